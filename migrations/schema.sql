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
-- Name: baselines; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.baselines (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    machine_id uuid NOT NULL,
    start_at timestamp with time zone NOT NULL,
    end_at timestamp with time zone NOT NULL,
    note text,
    source text DEFAULT 'user'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT baselines_check CHECK ((start_at < end_at)),
    CONSTRAINT baselines_note_check CHECK ((length(note) <= 2000))
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
-- Name: jobs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.jobs (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    machine_id uuid NOT NULL,
    target text NOT NULL,
    trigger text NOT NULL,
    slot timestamp with time zone,
    state text DEFAULT 'queued'::text NOT NULL,
    error text,
    model_version integer,
    attempts integer DEFAULT 0 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    heartbeat_at timestamp with time zone,
    CONSTRAINT jobs_state_check CHECK ((state = ANY (ARRAY['queued'::text, 'running'::text, 'succeeded'::text, 'failed'::text]))),
    CONSTRAINT jobs_target_check CHECK ((target = ANY (ARRAY['detector'::text, 'classifier'::text]))),
    CONSTRAINT jobs_trigger_check CHECK ((trigger = ANY (ARRAY['manual'::text, 'cron'::text, 'initial'::text])))
);


--
-- Name: labels; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.labels (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    machine_id uuid NOT NULL,
    start_at timestamp with time zone NOT NULL,
    end_at timestamp with time zone NOT NULL,
    label text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT labels_check CHECK ((start_at < end_at)),
    CONSTRAINT labels_label_check CHECK (((length(label) >= 1) AND (length(label) <= 100)))
);


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
-- Name: model_configs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.model_configs (
    machine_id uuid NOT NULL,
    target text NOT NULL,
    algorithm text NOT NULL,
    params jsonb DEFAULT '{}'::jsonb NOT NULL,
    threshold jsonb DEFAULT '{}'::jsonb NOT NULL,
    retrain_cron text,
    training_window_s double precision,
    activation text DEFAULT 'auto'::text NOT NULL,
    backfill_s double precision DEFAULT 86400 NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT model_configs_activation_check CHECK ((activation = ANY (ARRAY['auto'::text, 'manual'::text]))),
    CONSTRAINT model_configs_backfill_s_check CHECK ((backfill_s >= (0)::double precision)),
    CONSTRAINT model_configs_target_check CHECK ((target = ANY (ARRAY['detector'::text, 'classifier'::text]))),
    CONSTRAINT model_configs_training_window_s_check CHECK ((training_window_s > (0)::double precision))
);


--
-- Name: models; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.models (
    machine_id uuid NOT NULL,
    target text NOT NULL,
    version integer NOT NULL,
    algorithm text NOT NULL,
    params jsonb NOT NULL,
    threshold double precision,
    threshold_config jsonb DEFAULT '{}'::jsonb NOT NULL,
    embedding_kind text NOT NULL,
    dim integer NOT NULL,
    train_start timestamp with time zone,
    train_end timestamp with time zone,
    n_windows integer NOT NULL,
    score_stats jsonb DEFAULT '{}'::jsonb NOT NULL,
    metrics jsonb DEFAULT '{}'::jsonb NOT NULL,
    fit_seconds double precision NOT NULL,
    library_versions jsonb DEFAULT '{}'::jsonb NOT NULL,
    artifact bytea NOT NULL,
    artifact_sha256 text NOT NULL,
    job_id uuid,
    trained_at timestamp with time zone DEFAULT now() NOT NULL,
    active boolean DEFAULT false NOT NULL,
    activated_at timestamp with time zone,
    CONSTRAINT models_target_check CHECK ((target = ANY (ARRAY['detector'::text, 'classifier'::text])))
);
ALTER TABLE ONLY public.models ALTER COLUMN artifact SET STORAGE EXTERNAL;


--
-- Name: predictions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.predictions (
    machine_id uuid NOT NULL,
    sensor_id uuid NOT NULL,
    t timestamp with time zone NOT NULL,
    model_version integer NOT NULL,
    label text NOT NULL,
    confidence real NOT NULL,
    probabilities jsonb NOT NULL
);


--
-- Name: rollup_dirty; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.rollup_dirty (
    machine_id uuid NOT NULL,
    bucket timestamp with time zone NOT NULL
);


--
-- Name: schema_migrations; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.schema_migrations (
    version character varying NOT NULL
);


--
-- Name: score_rollups; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.score_rollups (
    machine_id uuid NOT NULL,
    bucket_s integer NOT NULL,
    bucket timestamp with time zone NOT NULL,
    n integer NOT NULL,
    score_sum double precision NOT NULL,
    score_max real NOT NULL,
    n_anomalous integer NOT NULL
);


--
-- Name: scores; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.scores (
    machine_id uuid NOT NULL,
    sensor_id uuid NOT NULL,
    t timestamp with time zone NOT NULL,
    model_version integer NOT NULL,
    score real NOT NULL,
    threshold real NOT NULL,
    anomalous boolean NOT NULL
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
-- Name: baselines baselines_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.baselines
    ADD CONSTRAINT baselines_pkey PRIMARY KEY (id);


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
-- Name: jobs jobs_machine_id_target_slot_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_machine_id_target_slot_key UNIQUE (machine_id, target, slot);


--
-- Name: jobs jobs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_pkey PRIMARY KEY (id);


--
-- Name: labels labels_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.labels
    ADD CONSTRAINT labels_pkey PRIMARY KEY (id);


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
-- Name: model_configs model_configs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.model_configs
    ADD CONSTRAINT model_configs_pkey PRIMARY KEY (machine_id, target);


--
-- Name: models models_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.models
    ADD CONSTRAINT models_pkey PRIMARY KEY (machine_id, target, version);


--
-- Name: predictions predictions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.predictions
    ADD CONSTRAINT predictions_pkey PRIMARY KEY (sensor_id, t, model_version);


--
-- Name: rollup_dirty rollup_dirty_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.rollup_dirty
    ADD CONSTRAINT rollup_dirty_pkey PRIMARY KEY (machine_id, bucket);


--
-- Name: schema_migrations schema_migrations_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.schema_migrations
    ADD CONSTRAINT schema_migrations_pkey PRIMARY KEY (version);


--
-- Name: score_rollups score_rollups_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.score_rollups
    ADD CONSTRAINT score_rollups_pkey PRIMARY KEY (machine_id, bucket_s, bucket);


--
-- Name: scores scores_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.scores
    ADD CONSTRAINT scores_pkey PRIMARY KEY (sensor_id, t, model_version);


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
-- Name: baselines_machine_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX baselines_machine_idx ON public.baselines USING btree (machine_id, start_at);


--
-- Name: embeddings_t_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX embeddings_t_idx ON public.embeddings USING btree (t DESC);


--
-- Name: ingest_errors_sensor_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ingest_errors_sensor_idx ON public.ingest_errors USING btree (sensor_id, received_at DESC);


--
-- Name: jobs_queue_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX jobs_queue_idx ON public.jobs USING btree (created_at) WHERE (state = ANY (ARRAY['queued'::text, 'running'::text]));


--
-- Name: labels_machine_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX labels_machine_idx ON public.labels USING btree (machine_id, start_at);


--
-- Name: machines_labels_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX machines_labels_idx ON public.machines USING gin (labels);


--
-- Name: models_one_active_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX models_one_active_idx ON public.models USING btree (machine_id, target) WHERE active;


--
-- Name: predictions_machine_t_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX predictions_machine_t_idx ON public.predictions USING btree (machine_id, t DESC);


--
-- Name: predictions_t_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX predictions_t_idx ON public.predictions USING btree (t DESC);


--
-- Name: scores_machine_t_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX scores_machine_t_idx ON public.scores USING btree (machine_id, t DESC);


--
-- Name: scores_t_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX scores_t_idx ON public.scores USING btree (t DESC);


--
-- Name: sensors_machine_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX sensors_machine_idx ON public.sensors USING btree (machine_id);


--
-- Name: embeddings ts_insert_blocker; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER ts_insert_blocker BEFORE INSERT ON public.embeddings FOR EACH ROW EXECUTE FUNCTION _timescaledb_functions.insert_blocker();


--
-- Name: predictions ts_insert_blocker; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER ts_insert_blocker BEFORE INSERT ON public.predictions FOR EACH ROW EXECUTE FUNCTION _timescaledb_functions.insert_blocker();


--
-- Name: scores ts_insert_blocker; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER ts_insert_blocker BEFORE INSERT ON public.scores FOR EACH ROW EXECUTE FUNCTION _timescaledb_functions.insert_blocker();


--
-- Name: baselines baselines_machine_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.baselines
    ADD CONSTRAINT baselines_machine_id_fkey FOREIGN KEY (machine_id) REFERENCES public.machines(id) ON DELETE CASCADE;


--
-- Name: jobs jobs_machine_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.jobs
    ADD CONSTRAINT jobs_machine_id_fkey FOREIGN KEY (machine_id) REFERENCES public.machines(id) ON DELETE CASCADE;


--
-- Name: labels labels_machine_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.labels
    ADD CONSTRAINT labels_machine_id_fkey FOREIGN KEY (machine_id) REFERENCES public.machines(id) ON DELETE CASCADE;


--
-- Name: model_configs model_configs_machine_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.model_configs
    ADD CONSTRAINT model_configs_machine_id_fkey FOREIGN KEY (machine_id) REFERENCES public.machines(id) ON DELETE CASCADE;


--
-- Name: models models_job_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.models
    ADD CONSTRAINT models_job_id_fkey FOREIGN KEY (job_id) REFERENCES public.jobs(id) ON DELETE SET NULL;


--
-- Name: models models_machine_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.models
    ADD CONSTRAINT models_machine_id_fkey FOREIGN KEY (machine_id) REFERENCES public.machines(id) ON DELETE CASCADE;


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
    ('20261125000001'),
    ('20261125000002');
