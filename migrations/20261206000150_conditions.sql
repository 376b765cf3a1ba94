-- migrate:up
-- Operating conditions of a machine over time (issue 15): a named mode and/or attributes
-- such as {"rpm": 1800, "load": "high"}. Detector training gives each window the condition
-- covering it, so a few minutes of "new normal" in a new condition is modelled as such
-- instead of being drowned by the original baseline.
CREATE TABLE machine_conditions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    machine_id uuid NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
    start_at timestamptz NOT NULL,
    end_at timestamptz NOT NULL,
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    attributes jsonb NOT NULL DEFAULT '{}'::jsonb,
    source text NOT NULL DEFAULT 'user',
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (start_at < end_at)
);
CREATE INDEX machine_conditions_machine_idx ON machine_conditions (machine_id, start_at);

-- migrate:down
DROP TABLE machine_conditions;
