\restrict dbmate

-- Dumped from database version 15.20 (Debian 15.20-0+deb12u1)
-- Dumped by pg_dump version 15.20 (Debian 15.20-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: timescaledb; Type: EXTENSION; Schema: -; Owner: -
--

CREATE EXTENSION IF NOT EXISTS timescaledb WITH SCHEMA public;


--
-- Name: EXTENSION timescaledb; Type: COMMENT; Schema: -; Owner: -
--

COMMENT ON EXTENSION timescaledb IS 'Enables scalable inserts and complex queries for time-series data (Apache 2 Edition)';


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: api_keys; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.api_keys (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    role text NOT NULL,
    key_hash bytea NOT NULL,
    prefix text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    revoked_at timestamp with time zone,
    CONSTRAINT api_keys_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT api_keys_role_check CHECK ((role = ANY (ARRAY['admin'::text, 'read'::text])))
);


--
-- Name: embeddings; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.embeddings (
    sensor_id uuid NOT NULL,
    t timestamp with time zone NOT NULL,
    v bytea NOT NULL
);
ALTER TABLE ONLY public.embeddings ALTER COLUMN v SET STORAGE PLAIN;


--
-- Name: ingest_batches; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ingest_batches (
    id bigint NOT NULL,
    sensor_id uuid NOT NULL,
    t_min timestamp with time zone NOT NULL,
    t_max timestamp with time zone NOT NULL,
    n integer NOT NULL,
    committed_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: ingest_batches_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.ingest_batches_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: ingest_batches_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.ingest_batches_id_seq OWNED BY public.ingest_batches.id;


--
-- Name: ingest_errors; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ingest_errors (
    id bigint NOT NULL,
    sensor_id uuid,
    topic text,
    source text NOT NULL,
    reason text NOT NULL,
    payload_excerpt text,
    received_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: ingest_errors_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.ingest_errors_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: ingest_errors_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.ingest_errors_id_seq OWNED BY public.ingest_errors.id;


--
-- Name: machines; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.machines (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    name text NOT NULL,
    kind text NOT NULL,
    location text,
    labels jsonb DEFAULT '{}'::jsonb NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT machines_kind_check CHECK (((length(kind) >= 1) AND (length(kind) <= 100))),
    CONSTRAINT machines_location_check CHECK ((length(location) <= 500)),
    CONSTRAINT machines_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200)))
);


--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version character varying NOT NULL
);


--
-- Name: sensors; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.sensors (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    machine_id uuid NOT NULL,
    name text NOT NULL,
    embedding_kind text NOT NULL,
    dim integer NOT NULL,
    window_s double precision DEFAULT 1.0 NOT NULL,
    sample_rate integer,
    token_hash bytea NOT NULL,
    last_seen_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT sensors_dim_check CHECK (((dim >= 1) AND (dim <= 4096))),
    CONSTRAINT sensors_embedding_kind_check CHECK (((length(embedding_kind) >= 1) AND (length(embedding_kind) <= 100))),
    CONSTRAINT sensors_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT sensors_sample_rate_check CHECK (((sample_rate >= 1000) AND (sample_rate <= 384000))),
    CONSTRAINT sensors_window_s_check CHECK (((window_s > (0)::double precision) AND (window_s <= (60)::double precision)))
);


--
-- Name: ingest_batches id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ingest_batches ALTER COLUMN id SET DEFAULT nextval('public.ingest_batches_id_seq'::regclass);


--
-- Name: ingest_errors id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ingest_errors ALTER COLUMN id SET DEFAULT nextval('public.ingest_errors_id_seq'::regclass);


--
-- Name: api_keys api_keys_key_hash_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash);


--
-- Name: api_keys api_keys_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.api_keys
    ADD CONSTRAINT api_keys_pkey PRIMARY KEY (id);


--
-- Name: embeddings embeddings_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.embeddings
    ADD CONSTRAINT embeddings_pkey PRIMARY KEY (sensor_id, t);


--
-- Name: ingest_batches ingest_batches_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ingest_batches
    ADD CONSTRAINT ingest_batches_pkey PRIMARY KEY (id);


--
-- Name: ingest_errors ingest_errors_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ingest_errors
    ADD CONSTRAINT ingest_errors_pkey PRIMARY KEY (id);


--
-- Name: machines machines_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.machines
    ADD CONSTRAINT machines_name_key UNIQUE (name);


--
-- Name: machines machines_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.machines
    ADD CONSTRAINT machines_pkey PRIMARY KEY (id);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: sensors sensors_machine_id_name_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sensors
    ADD CONSTRAINT sensors_machine_id_name_key UNIQUE (machine_id, name);


--
-- Name: sensors sensors_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sensors
    ADD CONSTRAINT sensors_pkey PRIMARY KEY (id);


--
-- Name: sensors sensors_token_hash_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sensors
    ADD CONSTRAINT sensors_token_hash_key UNIQUE (token_hash);


--
-- Name: embeddings_t_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX embeddings_t_idx ON public.embeddings USING btree (t DESC);


--
-- Name: ingest_errors_sensor_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ingest_errors_sensor_idx ON public.ingest_errors USING btree (sensor_id, received_at DESC);


--
-- Name: machines_labels_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX machines_labels_idx ON public.machines USING gin (labels);


--
-- Name: sensors_machine_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sensors_machine_idx ON public.sensors USING btree (machine_id);


--
-- Name: embeddings ts_insert_blocker; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER ts_insert_blocker BEFORE INSERT ON public.embeddings FOR EACH ROW EXECUTE FUNCTION _timescaledb_functions.insert_blocker();


--
-- Name: sensors sensors_machine_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sensors
    ADD CONSTRAINT sensors_machine_id_fkey FOREIGN KEY (machine_id) REFERENCES public.machines(id) ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--

\unrestrict dbmate


--
-- Dbmate schema migrations
--

INSERT INTO public.schema_migrations (version) VALUES
    ('20261125000001');
