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
-- Name: alert_rules; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alert_rules (
    machine_id uuid NOT NULL,
    enabled boolean NOT NULL,
    k integer NOT NULL,
    n integer NOT NULL,
    clear_ratio double precision NOT NULL,
    clear_windows integer NOT NULL,
    repeat_interval_s double precision,
    no_data_s double precision,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT alert_rules_check CHECK ((k <= n)),
    CONSTRAINT alert_rules_clear_ratio_check CHECK (((clear_ratio > (0)::double precision) AND (clear_ratio <= (1)::double precision))),
    CONSTRAINT alert_rules_clear_windows_check CHECK ((clear_windows >= 1)),
    CONSTRAINT alert_rules_k_check CHECK ((k >= 1)),
    CONSTRAINT alert_rules_n_check CHECK (((n >= 1) AND (n <= 62))),
    CONSTRAINT alert_rules_no_data_s_check CHECK ((no_data_s > (0)::double precision)),
    CONSTRAINT alert_rules_repeat_interval_s_check CHECK ((repeat_interval_s > (0)::double precision))
);


--
-- Name: alert_state; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alert_state (
    machine_id uuid NOT NULL,
    recent bigint DEFAULT 0 NOT NULL,
    consecutive_clear integer DEFAULT 0 NOT NULL,
    clear_since timestamp with time zone,
    marks jsonb DEFAULT '{}'::jsonb NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: alerts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.alerts (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    machine_id uuid NOT NULL,
    type text NOT NULL,
    state text DEFAULT 'firing'::text NOT NULL,
    starts_at timestamp with time zone NOT NULL,
    ends_at timestamp with time zone,
    fired_at timestamp with time zone DEFAULT now() NOT NULL,
    resolved_at timestamp with time zone,
    model_version integer,
    threshold double precision,
    clear_level double precision,
    peak_score double precision,
    peak_at timestamp with time zone,
    last_score double precision,
    last_window_at timestamp with time zone,
    window_count integer DEFAULT 0 NOT NULL,
    anomalous_count integer DEFAULT 0 NOT NULL,
    sensor_ids uuid[] DEFAULT '{}'::uuid[] NOT NULL,
    silenced boolean DEFAULT false NOT NULL,
    silence_id uuid,
    suppressed_reason text,
    acknowledged_at timestamp with time zone,
    acknowledged_by text,
    last_notified_at timestamp with time zone,
    notify_count integer DEFAULT 0 NOT NULL,
    verdict text,
    feedback_label text,
    feedback_note text,
    feedback_at timestamp with time zone,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT alerts_check CHECK (((state = 'resolved'::text) = (resolved_at IS NOT NULL))),
    CONSTRAINT alerts_feedback_label_check CHECK (((length(feedback_label) >= 1) AND (length(feedback_label) <= 100))),
    CONSTRAINT alerts_feedback_note_check CHECK ((length(feedback_note) <= 2000)),
    CONSTRAINT alerts_state_check CHECK ((state = ANY (ARRAY['firing'::text, 'resolved'::text]))),
    CONSTRAINT alerts_type_check CHECK ((type = ANY (ARRAY['anomaly'::text, 'no_data'::text]))),
    CONSTRAINT alerts_verdict_check CHECK ((verdict = ANY (ARRAY['false_positive'::text, 'confirmed'::text])))
);


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
-- Name: audio_chunks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.audio_chunks (
    sensor_id uuid NOT NULL,
    t_start timestamp with time zone NOT NULL,
    t_end timestamp with time zone NOT NULL,
    received_at timestamp with time zone DEFAULT now() NOT NULL,
    sample_rate integer NOT NULL,
    channels smallint NOT NULL,
    frames integer NOT NULL,
    codec text NOT NULL,
    data bytea NOT NULL,
    CONSTRAINT audio_chunks_channels_check CHECK (((channels >= 1) AND (channels <= 8))),
    CONSTRAINT audio_chunks_check CHECK ((t_start < t_end)),
    CONSTRAINT audio_chunks_codec_check CHECK ((codec = ANY (ARRAY['flac'::text, 'vorbis'::text, 'opus'::text]))),
    CONSTRAINT audio_chunks_frames_check CHECK ((frames > 0)),
    CONSTRAINT audio_chunks_sample_rate_check CHECK (((sample_rate >= 1000) AND (sample_rate <= 384000)))
);
ALTER TABLE ONLY public.audio_chunks ALTER COLUMN data SET STORAGE EXTERNAL;


--
-- Name: audio_pinned; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.audio_pinned (
    sensor_id uuid NOT NULL,
    t_start timestamp with time zone NOT NULL,
    t_end timestamp with time zone NOT NULL,
    received_at timestamp with time zone NOT NULL,
    sample_rate integer NOT NULL,
    channels smallint NOT NULL,
    frames integer NOT NULL,
    codec text NOT NULL,
    data bytea NOT NULL,
    pinned_at timestamp with time zone DEFAULT now() NOT NULL
);
ALTER TABLE ONLY public.audio_pinned ALTER COLUMN data SET STORAGE EXTERNAL;


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
-- Name: detected_events; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.detected_events (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    machine_id uuid NOT NULL,
    sensor_id uuid NOT NULL,
    label text NOT NULL,
    start_at timestamp with time zone NOT NULL,
    end_at timestamp with time zone NOT NULL,
    confidence real NOT NULL,
    model_version integer NOT NULL,
    message_id text,
    detected_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT detected_events_check CHECK ((start_at < end_at))
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
-- Name: event_rules; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.event_rules (
    machine_id uuid NOT NULL,
    notify_labels text[] DEFAULT '{}'::text[] NOT NULL,
    default_params jsonb DEFAULT '{}'::jsonb NOT NULL,
    class_params jsonb DEFAULT '{}'::jsonb NOT NULL,
    state_label text,
    state_max_age_s double precision DEFAULT 60 NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT event_rules_state_label_check CHECK (((length(state_label) >= 1) AND (length(state_label) <= 100))),
    CONSTRAINT event_rules_state_max_age_s_check CHECK (((state_max_age_s > (0)::double precision) AND (state_max_age_s <= (86400)::double precision)))
);


--
-- Name: fleet_embeddings; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.fleet_embeddings (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    version integer,
    state text DEFAULT 'queued'::text NOT NULL,
    trigger text NOT NULL,
    slot date,
    params jsonb DEFAULT '{}'::jsonb NOT NULL,
    error text,
    attempts integer DEFAULT 0 NOT NULL,
    heartbeat_at timestamp with time zone,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    trained_at timestamp with time zone,
    n_recordings integer,
    n_windows integer,
    aux_classes jsonb,
    dim integer,
    metrics jsonb,
    fit_seconds double precision,
    library_versions jsonb,
    artifact bytea,
    artifact_sha256 text,
    onnx bytea,
    onnx_sha256 text,
    CONSTRAINT fleet_embeddings_check CHECK (((state = 'succeeded'::text) = ((version IS NOT NULL) AND (artifact IS NOT NULL)))),
    CONSTRAINT fleet_embeddings_state_check CHECK ((state = ANY (ARRAY['queued'::text, 'running'::text, 'succeeded'::text, 'failed'::text]))),
    CONSTRAINT fleet_embeddings_trigger_check CHECK ((trigger = ANY (ARRAY['api'::text, 'schedule'::text]))),
    CONSTRAINT fleet_embeddings_version_check CHECK ((version >= 1))
);


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
-- Name: machine_conditions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.machine_conditions (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    machine_id uuid NOT NULL,
    start_at timestamp with time zone NOT NULL,
    end_at timestamp with time zone NOT NULL,
    name text NOT NULL,
    attributes jsonb DEFAULT '{}'::jsonb NOT NULL,
    source text DEFAULT 'user'::text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT machine_conditions_check CHECK ((start_at < end_at)),
    CONSTRAINT machine_conditions_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200)))
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
-- Name: reembed_jobs; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.reembed_jobs (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    sensor_id uuid NOT NULL,
    kind text NOT NULL,
    start_at timestamp with time zone NOT NULL,
    end_at timestamp with time zone NOT NULL,
    state text DEFAULT 'queued'::text NOT NULL,
    done_until timestamp with time zone,
    windows integer DEFAULT 0 NOT NULL,
    error text,
    attempts integer DEFAULT 0 NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    started_at timestamp with time zone,
    finished_at timestamp with time zone,
    heartbeat_at timestamp with time zone,
    CONSTRAINT reembed_jobs_check CHECK ((start_at < end_at)),
    CONSTRAINT reembed_jobs_kind_check CHECK (((length(kind) >= 1) AND (length(kind) <= 100))),
    CONSTRAINT reembed_jobs_state_check CHECK ((state = ANY (ARRAY['queued'::text, 'running'::text, 'succeeded'::text, 'failed'::text])))
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
    audio_policy text DEFAULT 'keep'::text NOT NULL,
    audio_codec text DEFAULT 'flac'::text NOT NULL,
    CONSTRAINT sensors_audio_codec_check CHECK ((audio_codec = ANY (ARRAY['flac'::text, 'vorbis'::text, 'opus'::text]))),
    CONSTRAINT sensors_audio_policy_check CHECK ((audio_policy = ANY (ARRAY['keep'::text, 'off'::text]))),
    CONSTRAINT sensors_dim_check CHECK (((dim >= 1) AND (dim <= 4096))),
    CONSTRAINT sensors_embedding_kind_check CHECK (((length(embedding_kind) >= 1) AND (length(embedding_kind) <= 100))),
    CONSTRAINT sensors_name_check CHECK (((length(name) >= 1) AND (length(name) <= 200))),
    CONSTRAINT sensors_sample_rate_check CHECK (((sample_rate >= 1000) AND (sample_rate <= 384000))),
    CONSTRAINT sensors_window_s_check CHECK (((window_s > (0)::double precision) AND (window_s <= (60)::double precision)))
);


--
-- Name: silences; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.silences (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    machine_id uuid NOT NULL,
    start_at timestamp with time zone NOT NULL,
    end_at timestamp with time zone NOT NULL,
    reason text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT silences_check CHECK ((start_at < end_at)),
    CONSTRAINT silences_reason_check CHECK (((length(reason) >= 1) AND (length(reason) <= 2000)))
);


--
-- Name: ui_sessions; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.ui_sessions (
    id_hash bytea NOT NULL,
    key_hash bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    expires_at timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone,
    CONSTRAINT ui_sessions_check CHECK ((expires_at > created_at))
);


--
-- Name: webhook_attempts; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.webhook_attempts (
    id bigint NOT NULL,
    delivery_id uuid NOT NULL,
    attempted_at timestamp with time zone DEFAULT now() NOT NULL,
    status integer,
    error text,
    duration_ms double precision NOT NULL
);


--
-- Name: webhook_attempts_id_seq; Type: SEQUENCE; Schema: public; Owner: -
--

CREATE SEQUENCE public.webhook_attempts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: webhook_attempts_id_seq; Type: SEQUENCE OWNED BY; Schema: public; Owner: -
--

ALTER SEQUENCE public.webhook_attempts_id_seq OWNED BY public.webhook_attempts.id;


--
-- Name: webhook_deliveries; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.webhook_deliveries (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    webhook_id uuid NOT NULL,
    message_id text NOT NULL,
    state text DEFAULT 'pending'::text NOT NULL,
    attempts integer DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone DEFAULT now() NOT NULL,
    give_up_at timestamp with time zone,
    last_status integer,
    last_error text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    delivered_at timestamp with time zone,
    CONSTRAINT webhook_deliveries_state_check CHECK ((state = ANY (ARRAY['pending'::text, 'delivered'::text, 'failed'::text])))
);


--
-- Name: webhook_messages; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.webhook_messages (
    id text NOT NULL,
    event_type text NOT NULL,
    machine_id uuid,
    body text NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: webhooks; Type: TABLE; Schema: public; Owner: -
--

CREATE TABLE public.webhooks (
    id uuid DEFAULT gen_random_uuid() NOT NULL,
    url text NOT NULL,
    events text[] NOT NULL,
    machine_ids uuid[],
    description text,
    secret text NOT NULL,
    enabled boolean DEFAULT true NOT NULL,
    disabled_reason text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    updated_at timestamp with time zone DEFAULT now() NOT NULL,
    CONSTRAINT webhooks_description_check CHECK ((length(description) <= 2000)),
    CONSTRAINT webhooks_events_check CHECK ((cardinality(events) >= 1)),
    CONSTRAINT webhooks_url_check CHECK (((length(url) >= 1) AND (length(url) <= 2000)))
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
-- Name: webhook_attempts id; Type: DEFAULT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhook_attempts ALTER COLUMN id SET DEFAULT nextval('public.webhook_attempts_id_seq'::regclass);


--
-- Name: alert_rules alert_rules_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_rules
    ADD CONSTRAINT alert_rules_pkey PRIMARY KEY (machine_id);


--
-- Name: alert_state alert_state_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_state
    ADD CONSTRAINT alert_state_pkey PRIMARY KEY (machine_id);


--
-- Name: alerts alerts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alerts
    ADD CONSTRAINT alerts_pkey PRIMARY KEY (id);


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
-- Name: audio_pinned audio_pinned_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audio_pinned
    ADD CONSTRAINT audio_pinned_pkey PRIMARY KEY (sensor_id, t_start);


--
-- Name: baselines baselines_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.baselines
    ADD CONSTRAINT baselines_pkey PRIMARY KEY (id);


--
-- Name: detected_events detected_events_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.detected_events
    ADD CONSTRAINT detected_events_pkey PRIMARY KEY (id);


--
-- Name: embeddings embeddings_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.embeddings
    ADD CONSTRAINT embeddings_pkey PRIMARY KEY (sensor_id, t);


--
-- Name: event_rules event_rules_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.event_rules
    ADD CONSTRAINT event_rules_pkey PRIMARY KEY (machine_id);


--
-- Name: fleet_embeddings fleet_embeddings_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.fleet_embeddings
    ADD CONSTRAINT fleet_embeddings_pkey PRIMARY KEY (id);


--
-- Name: fleet_embeddings fleet_embeddings_version_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.fleet_embeddings
    ADD CONSTRAINT fleet_embeddings_version_key UNIQUE (version);


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
-- Name: machine_conditions machine_conditions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.machine_conditions
    ADD CONSTRAINT machine_conditions_pkey PRIMARY KEY (id);


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
-- Name: reembed_jobs reembed_jobs_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.reembed_jobs
    ADD CONSTRAINT reembed_jobs_pkey PRIMARY KEY (id);


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
-- Name: silences silences_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.silences
    ADD CONSTRAINT silences_pkey PRIMARY KEY (id);


--
-- Name: ui_sessions ui_sessions_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.ui_sessions
    ADD CONSTRAINT ui_sessions_pkey PRIMARY KEY (id_hash);


--
-- Name: webhook_attempts webhook_attempts_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhook_attempts
    ADD CONSTRAINT webhook_attempts_pkey PRIMARY KEY (id);


--
-- Name: webhook_deliveries webhook_deliveries_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (id);


--
-- Name: webhook_deliveries webhook_deliveries_webhook_id_message_id_key; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_webhook_id_message_id_key UNIQUE (webhook_id, message_id);


--
-- Name: webhook_messages webhook_messages_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhook_messages
    ADD CONSTRAINT webhook_messages_pkey PRIMARY KEY (id);


--
-- Name: webhooks webhooks_pkey; Type: CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhooks
    ADD CONSTRAINT webhooks_pkey PRIMARY KEY (id);


--
-- Name: alerts_machine_starts_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX alerts_machine_starts_idx ON public.alerts USING btree (machine_id, starts_at DESC);


--
-- Name: alerts_one_open_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX alerts_one_open_idx ON public.alerts USING btree (machine_id, type) WHERE (state = 'firing'::text);


--
-- Name: alerts_starts_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX alerts_starts_idx ON public.alerts USING btree (starts_at DESC);


--
-- Name: alerts_verdict_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX alerts_verdict_idx ON public.alerts USING btree (machine_id, verdict) WHERE (verdict IS NOT NULL);


--
-- Name: audio_chunks_received_at_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX audio_chunks_received_at_idx ON public.audio_chunks USING btree (received_at DESC);


--
-- Name: audio_chunks_sensor_t_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX audio_chunks_sensor_t_idx ON public.audio_chunks USING btree (sensor_id, t_start);


--
-- Name: baselines_machine_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX baselines_machine_idx ON public.baselines USING btree (machine_id, start_at);


--
-- Name: detected_events_lookup_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX detected_events_lookup_idx ON public.detected_events USING btree (machine_id, sensor_id, label, end_at);


--
-- Name: embeddings_t_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX embeddings_t_idx ON public.embeddings USING btree (t DESC);


--
-- Name: fleet_embeddings_one_open_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX fleet_embeddings_one_open_idx ON public.fleet_embeddings USING btree ((true)) WHERE (state = ANY (ARRAY['queued'::text, 'running'::text]));


--
-- Name: fleet_embeddings_slot_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX fleet_embeddings_slot_idx ON public.fleet_embeddings USING btree (slot) WHERE (slot IS NOT NULL);


--
-- Name: ingest_errors_received_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ingest_errors_received_idx ON public.ingest_errors USING btree (received_at);


--
-- Name: ingest_errors_sensor_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ingest_errors_sensor_idx ON public.ingest_errors USING btree (sensor_id, received_at DESC);


--
-- Name: jobs_finished_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX jobs_finished_idx ON public.jobs USING btree (finished_at) WHERE (state = ANY (ARRAY['succeeded'::text, 'failed'::text]));


--
-- Name: jobs_queue_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX jobs_queue_idx ON public.jobs USING btree (created_at) WHERE (state = ANY (ARRAY['queued'::text, 'running'::text]));


--
-- Name: labels_machine_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX labels_machine_idx ON public.labels USING btree (machine_id, start_at);


--
-- Name: machine_conditions_machine_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX machine_conditions_machine_idx ON public.machine_conditions USING btree (machine_id, start_at);


--
-- Name: machines_labels_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX machines_labels_idx ON public.machines USING gin (labels);


--
-- Name: models_job_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX models_job_idx ON public.models USING btree (job_id) WHERE (job_id IS NOT NULL);


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
-- Name: reembed_jobs_one_open_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE UNIQUE INDEX reembed_jobs_one_open_idx ON public.reembed_jobs USING btree (sensor_id) WHERE (state = ANY (ARRAY['queued'::text, 'running'::text]));


--
-- Name: reembed_jobs_queue_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX reembed_jobs_queue_idx ON public.reembed_jobs USING btree (created_at) WHERE (state = ANY (ARRAY['queued'::text, 'running'::text]));


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
-- Name: silences_machine_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX silences_machine_idx ON public.silences USING btree (machine_id, end_at);


--
-- Name: ui_sessions_expires_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX ui_sessions_expires_idx ON public.ui_sessions USING btree (expires_at);


--
-- Name: webhook_attempts_delivery_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX webhook_attempts_delivery_idx ON public.webhook_attempts USING btree (delivery_id, id DESC);


--
-- Name: webhook_deliveries_due_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX webhook_deliveries_due_idx ON public.webhook_deliveries USING btree (next_attempt_at) WHERE (state = 'pending'::text);


--
-- Name: webhook_deliveries_message_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX webhook_deliveries_message_idx ON public.webhook_deliveries USING btree (message_id);


--
-- Name: webhook_deliveries_webhook_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX webhook_deliveries_webhook_idx ON public.webhook_deliveries USING btree (webhook_id, created_at DESC);


--
-- Name: webhook_messages_created_idx; Type: INDEX; Schema: public; Owner: -
--

CREATE INDEX webhook_messages_created_idx ON public.webhook_messages USING btree (created_at);


--
-- Name: audio_chunks ts_insert_blocker; Type: TRIGGER; Schema: public; Owner: -
--

CREATE TRIGGER ts_insert_blocker BEFORE INSERT ON public.audio_chunks FOR EACH ROW EXECUTE FUNCTION _timescaledb_functions.insert_blocker();


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
-- Name: alert_rules alert_rules_machine_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_rules
    ADD CONSTRAINT alert_rules_machine_id_fkey FOREIGN KEY (machine_id) REFERENCES public.machines(id) ON DELETE CASCADE;


--
-- Name: alert_state alert_state_machine_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alert_state
    ADD CONSTRAINT alert_state_machine_id_fkey FOREIGN KEY (machine_id) REFERENCES public.machines(id) ON DELETE CASCADE;


--
-- Name: alerts alerts_machine_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alerts
    ADD CONSTRAINT alerts_machine_id_fkey FOREIGN KEY (machine_id) REFERENCES public.machines(id) ON DELETE CASCADE;


--
-- Name: alerts alerts_silence_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.alerts
    ADD CONSTRAINT alerts_silence_id_fkey FOREIGN KEY (silence_id) REFERENCES public.silences(id) ON DELETE SET NULL;


--
-- Name: audio_pinned audio_pinned_sensor_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.audio_pinned
    ADD CONSTRAINT audio_pinned_sensor_id_fkey FOREIGN KEY (sensor_id) REFERENCES public.sensors(id) ON DELETE CASCADE;


--
-- Name: baselines baselines_machine_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.baselines
    ADD CONSTRAINT baselines_machine_id_fkey FOREIGN KEY (machine_id) REFERENCES public.machines(id) ON DELETE CASCADE;


--
-- Name: detected_events detected_events_machine_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.detected_events
    ADD CONSTRAINT detected_events_machine_id_fkey FOREIGN KEY (machine_id) REFERENCES public.machines(id) ON DELETE CASCADE;


--
-- Name: event_rules event_rules_machine_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.event_rules
    ADD CONSTRAINT event_rules_machine_id_fkey FOREIGN KEY (machine_id) REFERENCES public.machines(id) ON DELETE CASCADE;


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
-- Name: machine_conditions machine_conditions_machine_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.machine_conditions
    ADD CONSTRAINT machine_conditions_machine_id_fkey FOREIGN KEY (machine_id) REFERENCES public.machines(id) ON DELETE CASCADE;


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
-- Name: reembed_jobs reembed_jobs_sensor_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.reembed_jobs
    ADD CONSTRAINT reembed_jobs_sensor_id_fkey FOREIGN KEY (sensor_id) REFERENCES public.sensors(id) ON DELETE CASCADE;


--
-- Name: sensors sensors_machine_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.sensors
    ADD CONSTRAINT sensors_machine_id_fkey FOREIGN KEY (machine_id) REFERENCES public.machines(id) ON DELETE CASCADE;


--
-- Name: silences silences_machine_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.silences
    ADD CONSTRAINT silences_machine_id_fkey FOREIGN KEY (machine_id) REFERENCES public.machines(id) ON DELETE CASCADE;


--
-- Name: webhook_attempts webhook_attempts_delivery_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhook_attempts
    ADD CONSTRAINT webhook_attempts_delivery_id_fkey FOREIGN KEY (delivery_id) REFERENCES public.webhook_deliveries(id) ON DELETE CASCADE;


--
-- Name: webhook_deliveries webhook_deliveries_message_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_message_id_fkey FOREIGN KEY (message_id) REFERENCES public.webhook_messages(id) ON DELETE CASCADE;


--
-- Name: webhook_deliveries webhook_deliveries_webhook_id_fkey; Type: FK CONSTRAINT; Schema: public; Owner: -
--

ALTER TABLE ONLY public.webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_webhook_id_fkey FOREIGN KEY (webhook_id) REFERENCES public.webhooks(id) ON DELETE CASCADE;


--
-- PostgreSQL database dump complete
--

\unrestrict dbmate


--
-- Dbmate schema migrations
--

INSERT INTO public.schema_migrations (version) VALUES
    ('20261125000001'),
    ('20261125000002'),
    ('20261125000003'),
    ('20261125000005'),
    ('20261206000120'),
    ('20261206000121'),
    ('20261206000130'),
    ('20261206000150'),
    ('20261206000160'),
    ('20261207000100');
