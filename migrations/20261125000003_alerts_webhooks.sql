-- migrate:up
-- One rule per machine; a machine without a row uses the defaults in service.alerting.rules.
-- n <= 62 because the last n window flags live in one bigint bit ring (alert_state.recent).
CREATE TABLE alert_rules (
    machine_id uuid PRIMARY KEY REFERENCES machines (id) ON DELETE CASCADE,
    enabled boolean NOT NULL,
    k integer NOT NULL CHECK (k >= 1),
    n integer NOT NULL CHECK (n BETWEEN 1 AND 62),
    clear_ratio double precision NOT NULL CHECK (clear_ratio > 0 AND clear_ratio <= 1),
    clear_windows integer NOT NULL CHECK (clear_windows >= 1),
    repeat_interval_s double precision CHECK (repeat_interval_s > 0),
    no_data_s double precision CHECK (no_data_s > 0),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK (k <= n)
);

-- Per-machine evaluation state, updated once per scored batch (O(1), no score re-reads).
-- recent: bit i set = the i-th most recent evaluated window was anomalous.
-- marks: sensor id -> epoch microseconds of its newest evaluated window, so re-scored or
-- late windows never move the state twice.
CREATE TABLE alert_state (
    machine_id uuid PRIMARY KEY REFERENCES machines (id) ON DELETE CASCADE,
    recent bigint NOT NULL DEFAULT 0,
    consecutive_clear integer NOT NULL DEFAULT 0,
    clear_since timestamptz,
    marks jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Maintenance windows: alerts are still recorded (silenced) but notify nobody.
CREATE TABLE silences (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    machine_id uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (start_at < end_at)
);
CREATE INDEX silences_machine_idx ON silences (machine_id, end_at);

CREATE TABLE alerts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    machine_id uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    type text NOT NULL CHECK (type IN ('anomaly', 'no_data')),
    state text NOT NULL DEFAULT 'firing' CHECK (state IN ('firing', 'resolved')),
    starts_at timestamptz NOT NULL,
    ends_at timestamptz,
    fired_at timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz,
    model_version integer,
    threshold double precision,
    clear_level double precision,
    peak_score double precision,
    peak_at timestamptz,
    last_score double precision,
    last_window_at timestamptz,
    window_count integer NOT NULL DEFAULT 0,
    anomalous_count integer NOT NULL DEFAULT 0,
    sensor_ids uuid[] NOT NULL DEFAULT '{}',
    silenced boolean NOT NULL DEFAULT false,
    silence_id uuid REFERENCES silences (id) ON DELETE SET NULL,
    -- Why notifications are held back for reasons other than a silence (issue 6: the
    -- machine's operating state is 'off').
    suppressed_reason text,
    acknowledged_at timestamptz,
    acknowledged_by text,
    last_notified_at timestamptz,
    notify_count integer NOT NULL DEFAULT 0,
    verdict text CHECK (verdict IN ('false_positive', 'confirmed')),
    feedback_label text CHECK (length(feedback_label) BETWEEN 1 AND 100),
    feedback_note text CHECK (length(feedback_note) <= 2000),
    feedback_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'resolved') = (resolved_at IS NOT NULL))
);
CREATE UNIQUE INDEX alerts_one_open_idx ON alerts (machine_id, type) WHERE state = 'firing';
CREATE INDEX alerts_machine_starts_idx ON alerts (machine_id, starts_at DESC);
CREATE INDEX alerts_starts_idx ON alerts (starts_at DESC);
CREATE INDEX alerts_verdict_idx ON alerts (machine_id, verdict) WHERE verdict IS NOT NULL;

-- Webhook endpoints. The secret is kept (it signs every message) but only shown at creation.
-- machine_ids NULL = every machine.
CREATE TABLE webhooks (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    url text NOT NULL CHECK (length(url) BETWEEN 1 AND 2000),
    events text[] NOT NULL CHECK (cardinality(events) >= 1),
    machine_ids uuid[],
    description text CHECK (length(description) <= 2000),
    secret text NOT NULL,
    enabled boolean NOT NULL DEFAULT true,
    disabled_reason text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per event; the body is stored as sent so every retry is byte-identical, and the
-- id (msg_…) is the webhook-id header of every attempt.
CREATE TABLE webhook_messages (
    id text PRIMARY KEY,
    event_type text NOT NULL,
    machine_id uuid,
    body text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per (endpoint, message): the outbox. A claim pushes next_attempt_at forward by a
-- lease and commits before sending, so a worker killed mid-send only delays the retry.
CREATE TABLE webhook_deliveries (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    webhook_id uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    message_id text NOT NULL REFERENCES webhook_messages (id) ON DELETE CASCADE,
    state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- Set at the first claim to now() + the worker's retry window; reset by a redelivery.
    give_up_at timestamptz,
    last_status integer,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    delivered_at timestamptz,
    UNIQUE (webhook_id, message_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, created_at DESC);

CREATE TABLE webhook_attempts (
    id bigserial PRIMARY KEY,
    delivery_id uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempted_at timestamptz NOT NULL DEFAULT now(),
    status integer,
    error text,
    duration_ms double precision NOT NULL
);
CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, id DESC);

-- migrate:down
DROP TABLE webhook_attempts;
DROP TABLE webhook_deliveries;
DROP TABLE webhook_messages;
DROP TABLE webhooks;
DROP TABLE alerts;
DROP TABLE silences;
DROP TABLE alert_state;
DROP TABLE alert_rules;
