-- migrate:up
-- Sound classification and event detection (issue 6). Labels, classifier configs
-- (model_configs target 'classifier'), classifier models and predictions live in
-- 20261125000002_models_scores.sql; this adds the per-machine event rule and the record of
-- announced events.

-- One rule per machine; a machine without a row announces no events, suppresses nothing and
-- detects events with the defaults of detectors.events.
-- default_params / class_params: event detection parameters (smoothing, on, off,
-- min_duration_s, merge_gap_s), for every class and per class.
-- state_label: the operating state (e.g. 'off') in which anomaly alerts are recorded but
-- not sent, while it is the machine's latest predicted class no older than state_max_age_s.
CREATE TABLE event_rules (
    machine_id uuid PRIMARY KEY REFERENCES machines (id) ON DELETE CASCADE,
    notify_labels text[] NOT NULL DEFAULT '{}',
    default_params jsonb NOT NULL DEFAULT '{}'::jsonb,
    class_params jsonb NOT NULL DEFAULT '{}'::jsonb,
    state_label text CHECK (length(state_label) BETWEEN 1 AND 100),
    state_max_age_s double precision NOT NULL DEFAULT 60
        CHECK (state_max_age_s > 0 AND state_max_age_s <= 86400),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Events announced with `event.detected`, written in the scorer transaction that queued the
-- webhook: a later batch that re-detects the same event (grown, or merged with a neighbour)
-- overlaps its row and is not announced again.
CREATE TABLE detected_events (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    machine_id uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    sensor_id uuid NOT NULL,
    label text NOT NULL,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    confidence real NOT NULL,
    model_version integer NOT NULL,
    message_id text,
    detected_at timestamptz NOT NULL DEFAULT now(),
    CHECK (start_at < end_at)
);
CREATE INDEX detected_events_lookup_idx ON detected_events (machine_id, sensor_id, label,
                                                            end_at);

-- migrate:down
DROP TABLE detected_events;
DROP TABLE event_rules;
