-- migrate:up
-- Dashboard sign-in sessions (issue 13). The browser holds a random session id in an
-- HttpOnly cookie; only its SHA-256 is stored. The key the user signed in with is kept as
-- its SHA-256 too, so every request re-derives the role from the live key: a revoked or
-- rotated key ends its sessions at once. Sign-out sets revoked_at.
CREATE TABLE ui_sessions (
    id_hash bytea PRIMARY KEY,
    key_hash bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    revoked_at timestamptz,
    CHECK (expires_at > created_at)
);
CREATE INDEX ui_sessions_expires_idx ON ui_sessions (expires_at);

-- migrate:down
DROP TABLE ui_sessions;
