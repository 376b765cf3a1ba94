"""ingest.audio_store.read_audio against a per-frame reference: samples, gaps and held
seconds of ranges that start before, end after and straddle gaps between held audio."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest
import soundfile as sf

from ingest import audio_chunks
from ingest.audio_store import insert_audio, read_audio
from tests.conftest import DATA_DIR

PUMP = DATA_DIR / "mimii" / "mimii_0dB_singles__pump_id_00_normal_00000000.wav"
RATE = 16000
ORIGIN = datetime(2026, 11, 1, tzinfo=UTC)


def held_recordings(conn: psycopg.Connection) -> tuple[uuid.UUID, np.ndarray]:
    """Two stretches of a real recording, 0-4 s and 7-10 s after ORIGIN (FLAC, so exact);
    returns the sensor and the per-frame truth over 0-12 s (NaN where nothing is held)."""
    samples, rate = sf.read(PUMP, dtype="float32", always_2d=True)
    assert rate == RATE
    sensor, truth = uuid.uuid4(), np.full(12 * RATE, np.nan, np.float32)
    for lo_s, hi_s in ((0, 4), (7, 10)):
        part = samples[lo_s * RATE:hi_s * RATE]
        chunks = audio_chunks.split(part, RATE, "flac", "PCM_16")
        insert_audio(conn, sensor, ORIGIN + timedelta(seconds=lo_s), chunks, RATE)
        truth[lo_s * RATE:hi_s * RATE] = part[:, 0]
    return sensor, truth


def reference_gaps(truth: np.ndarray, start: datetime) -> list[tuple[datetime, datetime]]:
    """Runs of unheld frames, found frame by frame."""
    gaps, run_start = [], None
    for i, unheld in enumerate(np.append(np.isnan(truth), False)):
        if unheld and run_start is None:
            run_start = i
        elif not unheld and run_start is not None:
            gaps.append((start + timedelta(microseconds=round(run_start * 1e6 / RATE)),
                         start + timedelta(microseconds=round(i * 1e6 / RATE))))
            run_start = None
    return gaps


@pytest.mark.parametrize(("lo_s", "hi_s"), [(0, 4), (1, 3), (-2, 12), (3, 8), (3.5, 7.5),
                                            (8, 12), (0.5, 9.25)])
def test_read_audio_matches_a_per_frame_reference(conn: psycopg.Connection, lo_s: float,
                                                  hi_s: float) -> None:
    sensor, truth = held_recordings(conn)
    start, end = ORIGIN + timedelta(seconds=lo_s), ORIGIN + timedelta(seconds=hi_s)
    # The truth over [lo_s, hi_s): nothing is held outside 0-12 s.
    padded = np.concatenate([np.full(2 * RATE, np.nan, np.float32), truth])
    wanted = padded[round((lo_s + 2) * RATE):round((hi_s + 2) * RATE)]
    held = read_audio(conn, sensor, start, end)
    assert held.sample_rate == RATE and held.samples.shape == (wanted.shape[0], 1)
    np.testing.assert_array_equal(held.samples[:, 0], np.nan_to_num(wanted, nan=0.0))
    assert held.gaps == reference_gaps(wanted, start)
    assert held.held_seconds == pytest.approx(np.count_nonzero(~np.isnan(wanted)) / RATE)


@pytest.mark.parametrize(("lo_s", "hi_s"), [(4, 7), (20, 25)])
def test_nothing_held_is_one_gap(conn: psycopg.Connection, lo_s: float, hi_s: float) -> None:
    sensor, _ = held_recordings(conn)
    start, end = ORIGIN + timedelta(seconds=lo_s), ORIGIN + timedelta(seconds=hi_s)
    held = read_audio(conn, sensor, start, end)
    assert (held.held_seconds, held.gaps, held.samples.size) == (0.0, [(start, end)], 0)
