-- migrate:up
-- Issues 14 and 15: the learned fleet embedding. One row per training run of the fleet
-- embedding network (every machine's stored audio, auxiliary labels machine/sensor/
-- condition); a run that succeeds gets the next `version`, which names the embedding kind
-- `fleet-v<version>`. Runs are a queue claimed with FOR UPDATE SKIP LOCKED by any worker;
-- at most one is queued or running at a time (two runs would train the same thing twice).
CREATE TABLE fleet_embeddings (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    version integer UNIQUE CHECK (version >= 1),
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    trigger text NOT NULL CHECK (trigger IN ('api', 'schedule')),
    -- the day a scheduled run belongs to: one per day whichever process queued it
    slot date,
    params jsonb NOT NULL DEFAULT '{}'::jsonb,
    error text,
    attempts integer NOT NULL DEFAULT 0,
    heartbeat_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    trained_at timestamptz,
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
    CHECK ((state = 'succeeded') = (version IS NOT NULL AND artifact IS NOT NULL))
);
CREATE UNIQUE INDEX fleet_embeddings_one_open_idx ON fleet_embeddings ((true))
    WHERE state IN ('queued', 'running');
CREATE UNIQUE INDEX fleet_embeddings_slot_idx ON fleet_embeddings (slot)
    WHERE slot IS NOT NULL;

-- migrate:down
DROP TABLE fleet_embeddings;
