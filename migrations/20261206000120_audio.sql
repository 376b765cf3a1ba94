-- migrate:up
-- Issue 12: keep the sound. Each sensor has an audio policy: `keep` (the default) stores
-- every second of audio that reaches the server, `off` stores none; the codec is lossless
-- FLAC unless the sensor asks for a lossy one.
ALTER TABLE sensors
    ADD COLUMN audio_policy text NOT NULL DEFAULT 'keep' CHECK (audio_policy IN ('keep', 'off')),
    ADD COLUMN audio_codec text NOT NULL DEFAULT 'flac'
        CHECK (audio_codec IN ('flac', 'vorbis', 'opus'));

-- Live audio: one row per encoded chunk (up to 30 s) of one sensor, at the rate and with
-- the channels the sensor sent. Partitioned by *arrival* time, so the live retention
-- (drop_chunks) counts from when the audio arrived: backfilled history with old
-- timestamps is kept as long as fresh audio. Idempotency per (sensor, t_start) cannot be a
-- unique index here (it would have to include received_at): writers serialise per sensor
-- with an advisory lock and skip chunks already held (ingest.audio_store).
-- EXTERNAL storage: the bytes are already compressed; TOAST compression would only cost CPU.
CREATE TABLE audio_chunks (
    sensor_id uuid NOT NULL,
    t_start timestamptz NOT NULL,
    t_end timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    sample_rate integer NOT NULL CHECK (sample_rate BETWEEN 1000 AND 384000),
    channels smallint NOT NULL CHECK (channels BETWEEN 1 AND 8),
    frames integer NOT NULL CHECK (frames > 0),
    codec text NOT NULL CHECK (codec IN ('flac', 'vorbis', 'opus')),
    data bytea NOT NULL,
    CHECK (t_start < t_end)
);
ALTER TABLE audio_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
SELECT create_hypertable('audio_chunks', 'received_at', chunk_time_interval => interval '6 hours');
CREATE INDEX audio_chunks_sensor_t_idx ON audio_chunks (sensor_id, t_start);

-- Pinned audio: copies of live chunks that overlap training material (a baseline or a
-- label of the sensor's machine) or an alert's evidence (its span +-60 s), made by the
-- retention job just before the live chunks are dropped, and deleted once nothing pins
-- them any more. An ordinary table: drop_chunks never touches it.
CREATE TABLE audio_pinned (
    sensor_id uuid NOT NULL REFERENCES sensors (id) ON DELETE CASCADE,
    t_start timestamptz NOT NULL,
    t_end timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    sample_rate integer NOT NULL,
    channels smallint NOT NULL,
    frames integer NOT NULL,
    codec text NOT NULL,
    data bytea NOT NULL,
    pinned_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sensor_id, t_start)
);
ALTER TABLE audio_pinned ALTER COLUMN data SET STORAGE EXTERNAL;

-- migrate:down
DROP TABLE audio_pinned;
DROP TABLE audio_chunks;
ALTER TABLE sensors DROP COLUMN audio_codec, DROP COLUMN audio_policy;
