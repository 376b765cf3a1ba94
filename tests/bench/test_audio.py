"""The audio benchmark at a tiny size: real recordings through a real API and database, so
the benchmark cannot rot between runs of `python -m bench.run --only audio`."""

from __future__ import annotations

import io

import soundfile as sf

from bench import audio, audio_work
from bench.audio_tables import _per_core, render, sensor_day_rows
from bench.common import DATA_DIR

TINY = audio.Plan(sizes_s=(1.0, 1.5, 2.0), repeats=1, ranges_s=(1.0, 2.0, 4.0), phase_s=1.0,
                  storage_s=1.0, stack_name="audio_test")


def test_storage_groups_take_each_machine_type_at_its_native_rate_and_layout() -> None:
    groups = audio_work.storage_groups(DATA_DIR, seconds=1.0)
    labels = [label for label, _, _ in groups]
    assert len(labels) == len(set(labels))
    assert any(label.startswith("pump (mimii") for label in labels)
    bldc = [(samples, rate) for label, samples, rate in groups if label.startswith("bldc")]
    assert {rate for _, rate in bldc} == {16000, 44100}
    for samples, rate in bldc:
        assert samples.shape == (rate, 2)  # one second, both channels kept


def test_recordings_hand_out_consecutive_stretches_of_real_sound() -> None:
    recordings = audio_work.Recordings.load(DATA_DIR, limit_s=20.0)
    first, second = recordings.take(1.0), recordings.take(1.0)
    assert first.shape == second.shape == (16000, 1)
    assert (recordings.samples[16000:32000] == second).all()
    body = audio_work.wav16(first)
    assert sf.info(io.BytesIO(body)).subtype == "PCM_16"
    assert (sf.read(io.BytesIO(body), dtype="float32", always_2d=True)[0]
            == first).all()  # the recordings are 16-bit: the WAV is exact


def test_the_whole_benchmark_at_a_tiny_size() -> None:
    raw = audio.collect(TINY)
    assert len(raw["ingest"]) == len(TINY.sizes_s) * len(audio.CODECS)
    for cell in raw["ingest"]:
        assert cell["bytes"] == cell["copy_bytes"] > 0  # the reference wrote the same bytes
        assert cell["api_rate"] > 0 and cell["copy_rate"] > 0
    for codec, steps in raw["phases"].items():
        assert set(steps) == {"decode", "embed", "encode", "db"}, codec
    for codec, cells in raw["reads"].items():
        for cell in cells:
            assert cell["held_s"] == cell["range_s"], codec  # contiguous: no gap
            assert cell["wav_bytes"] >= cell["range_s"] * 16000 * 2  # 16-bit mono WAV
            assert cell["api"]["p50_s"] > 0 and cell["stored_bytes"] > 0
    assert all(c["source"] == "audio" and c["columns"] > 0 for c in raw["spectrograms"])
    for group in raw["storage"]["types"]:
        assert group["opus"] < group["flac"] < group["pcm16_bps"], group["label"]
    for codec, disk in raw["storage"]["disk"].items():
        assert disk["table_growth_bytes"] >= disk["encoded_bytes"] > 0, codec
    text, tables = render(raw)
    assert "Ingest" in text and len(tables) == 7
    assert [row[0] for row in sensor_day_rows(raw)] == list(audio.CODECS)


def test_a_run_too_small_for_the_cpu_clock_renders_without_dividing_by_zero() -> None:
    # The process CPU clock ticks every 10 ms: a tiny CI-size upload can read 0 s of CPU.
    assert "too little CPU to measure" in _per_core(0.0)
    assert _per_core(0.01) == "at most 100 audio s per s per core"
