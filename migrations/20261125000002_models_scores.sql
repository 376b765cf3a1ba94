-- migrate:up
-- Per-machine model configuration: target 'detector' (anomaly) or 'classifier' (issue 6).
CREATE TABLE model_configs (
    machine_id uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    target text NOT NULL CHECK (target IN ('detector', 'classifier')),
    algorithm text NOT NULL,
    params jsonb NOT NULL DEFAULT '{}'::jsonb,
    threshold jsonb NOT NULL DEFAULT '{}'::jsonb,
    retrain_cron text,
    training_window_s double precision CHECK (training_window_s > 0),
    activation text NOT NULL DEFAULT 'auto' CHECK (activation IN ('auto', 'manual')),
    backfill_s double precision NOT NULL DEFAULT 86400 CHECK (backfill_s >= 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (machine_id, target)
);

-- Normal-operation time ranges (training data for detectors).
CREATE TABLE baselines (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    machine_id uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    note text CHECK (length(note) <= 2000),
    source text NOT NULL DEFAULT 'user',
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (start_at < end_at)
);
CREATE INDEX baselines_machine_idx ON baselines (machine_id, start_at);

-- Labelled time ranges (training data for classifiers).
CREATE TABLE labels (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    machine_id uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    label text NOT NULL CHECK (length(label) BETWEEN 1 AND 100),
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (start_at < end_at)
);
CREATE INDEX labels_machine_idx ON labels (machine_id, start_at);

-- Training runs. A scheduled run is unique per (machine, target, slot): two scheduler
-- processes, or a restart mid-run, can never create two runs for one cron slot.
CREATE TABLE jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    machine_id uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    target text NOT NULL CHECK (target IN ('detector', 'classifier')),
    trigger text NOT NULL CHECK (trigger IN ('manual', 'cron', 'initial')),
    slot timestamptz,
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    error text,
    model_version integer,
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    heartbeat_at timestamptz,
    UNIQUE (machine_id, target, slot)
);
CREATE INDEX jobs_queue_idx ON jobs (created_at) WHERE state IN ('queued', 'running');

-- Versioned model artifacts; the blob is loaded only after its sha256 matches.
CREATE TABLE models (
    machine_id uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    target text NOT NULL CHECK (target IN ('detector', 'classifier')),
    version integer NOT NULL,
    algorithm text NOT NULL,
    params jsonb NOT NULL,
    threshold double precision,
    threshold_config jsonb NOT NULL DEFAULT '{}'::jsonb,
    embedding_kind text NOT NULL,
    dim integer NOT NULL,
    train_start timestamptz,
    train_end timestamptz,
    n_windows integer NOT NULL,
    score_stats jsonb NOT NULL DEFAULT '{}'::jsonb,
    metrics jsonb NOT NULL DEFAULT '{}'::jsonb,
    fit_seconds double precision NOT NULL,
    library_versions jsonb NOT NULL DEFAULT '{}'::jsonb,
    artifact bytea NOT NULL,
    artifact_sha256 text NOT NULL,
    job_id uuid REFERENCES jobs (id) ON DELETE SET NULL,
    trained_at timestamptz NOT NULL DEFAULT now(),
    active boolean NOT NULL DEFAULT false,
    activated_at timestamptz,
    PRIMARY KEY (machine_id, target, version)
);
ALTER TABLE models ALTER COLUMN artifact SET STORAGE EXTERNAL;
CREATE UNIQUE INDEX models_one_active_idx ON models (machine_id, target) WHERE active;

-- One row per (window, detector model version).
CREATE TABLE scores (
    machine_id uuid NOT NULL,
    sensor_id uuid NOT NULL,
    t timestamptz NOT NULL,
    model_version integer NOT NULL,
    score real NOT NULL,
    threshold real NOT NULL,
    anomalous boolean NOT NULL,
    PRIMARY KEY (sensor_id, t, model_version)
);
SELECT create_hypertable('scores', 't', chunk_time_interval => interval '1 day');
CREATE INDEX scores_machine_t_idx ON scores (machine_id, t DESC);

-- Classifier outputs: one row per (window, classifier version).
CREATE TABLE predictions (
    machine_id uuid NOT NULL,
    sensor_id uuid NOT NULL,
    t timestamptz NOT NULL,
    model_version integer NOT NULL,
    label text NOT NULL,
    confidence real NOT NULL,
    probabilities jsonb NOT NULL,
    PRIMARY KEY (sensor_id, t, model_version)
);
SELECT create_hypertable('predictions', 't', chunk_time_interval => interval '1 day');
CREATE INDEX predictions_machine_t_idx ON predictions (machine_id, t DESC);

-- Score rollups maintained by the scheduler (Apache-only TimescaleDB has no continuous
-- aggregates). bucket_s is the bucket width in seconds (60 and 3600).
CREATE TABLE score_rollups (
    machine_id uuid NOT NULL,
    bucket_s integer NOT NULL,
    bucket timestamptz NOT NULL,
    n integer NOT NULL,
    score_sum double precision NOT NULL,
    score_max real NOT NULL,
    n_anomalous integer NOT NULL,
    PRIMARY KEY (machine_id, bucket_s, bucket)
);

-- Minute buckets whose rollups must be recomputed (written by the scorer).
CREATE TABLE rollup_dirty (
    machine_id uuid NOT NULL,
    bucket timestamptz NOT NULL,
    PRIMARY KEY (machine_id, bucket)
);

-- migrate:down
DROP TABLE rollup_dirty;
DROP TABLE score_rollups;
DROP TABLE predictions;
DROP TABLE scores;
DROP TABLE models;
DROP TABLE jobs;
DROP TABLE labels;
DROP TABLE baselines;
DROP TABLE model_configs;
