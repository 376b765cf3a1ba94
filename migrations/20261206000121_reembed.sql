-- migrate:up
-- Issue 12: recompute a sensor's windows from its stored audio over a time range (e.g. with
-- a better embedding kind). A queue claimed with FOR UPDATE SKIP LOCKED by any worker;
-- `done_until` is the resume point: windows before it are recomputed and committed, so a
-- worker killed mid-job leaves the job to be resumed, not restarted.
CREATE TABLE reembed_jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    sensor_id uuid NOT NULL REFERENCES sensors (id) ON DELETE CASCADE,
    kind text NOT NULL CHECK (length(kind) BETWEEN 1 AND 100),
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    state text NOT NULL DEFAULT 'queued'
        CHECK (state IN ('queued', 'running', 'succeeded', 'failed')),
    done_until timestamptz,
    windows integer NOT NULL DEFAULT 0,
    error text,
    attempts integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    heartbeat_at timestamptz,
    CHECK (start_at < end_at)
);
CREATE INDEX reembed_jobs_queue_idx ON reembed_jobs (created_at)
    WHERE state IN ('queued', 'running');
-- One unfinished re-embedding per sensor: two would rewrite the same windows.
CREATE UNIQUE INDEX reembed_jobs_one_open_idx ON reembed_jobs (sensor_id)
    WHERE state IN ('queued', 'running');

-- migrate:down
DROP TABLE reembed_jobs;
