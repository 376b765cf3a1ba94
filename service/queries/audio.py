"""Pinned audio: live chunks that are training material (they overlap a baseline or a
label of their sensor's machine) or an alert's evidence (they overlap the alert's span
widened by a margin) are copied to `audio_pinned` before retention drops them, and deleted
from there once nothing pins them any more. Reads (ingest.audio_store) look at both tables.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

# `a` is a chunk of audio_chunks or audio_pinned; `s` its sensor. A firing alert pins up
# to now: it is still gathering evidence.
_PINNED_BY = """(
    EXISTS (SELECT 1 FROM baselines b WHERE b.machine_id = s.machine_id
            AND b.start_at < a.t_end AND b.end_at > a.t_start)
    OR EXISTS (SELECT 1 FROM labels l WHERE l.machine_id = s.machine_id
               AND l.start_at < a.t_end AND l.end_at > a.t_start)
    OR EXISTS (SELECT 1 FROM alerts x WHERE x.machine_id = s.machine_id
               AND x.starts_at - make_interval(secs => %(margin)s) < a.t_end
               AND coalesce(x.ends_at, now()) + make_interval(secs => %(margin)s) > a.t_start)
)"""
PIN_EXPIRING = f"""
INSERT INTO audio_pinned (sensor_id, t_start, t_end, received_at, sample_rate, channels,
                          frames, codec, data)
SELECT a.sensor_id, a.t_start, a.t_end, a.received_at, a.sample_rate, a.channels, a.frames,
       a.codec, a.data
FROM audio_chunks a JOIN sensors s ON s.id = a.sensor_id
WHERE a.received_at < %(cutoff)s AND {_PINNED_BY}
ON CONFLICT (sensor_id, t_start) DO NOTHING
"""
RELEASE_UNPINNED = f"""
DELETE FROM audio_pinned a USING sensors s
WHERE s.id = a.sensor_id AND NOT {_PINNED_BY}
"""


def pin_expiring(conn: psycopg.Connection, cutoff: datetime, margin_s: float) -> int:
    """Copy the pinned chunks among those that arrived before `cutoff` (the ones the next
    drop_chunks may remove); returns how many were newly pinned."""
    return conn.execute(PIN_EXPIRING, {"cutoff": cutoff, "margin": margin_s}).rowcount


def release_unpinned(conn: psycopg.Connection, margin_s: float) -> int:
    """Delete pinned copies whose baseline, label and alert are all gone."""
    return conn.execute(RELEASE_UNPINNED, {"margin": margin_s}).rowcount
