"""Decoding uploaded audio: every real recording, FLAC round trips, and every rejection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ingest.audio import audio_to_embeddings, decode_audio
from ingest.errors import AudioError, IngestError, UnsupportedMediaTypeError
from ingest.features import embed
from tests.ingest.recordings import (
    BLDC_16K_STEREO,
    BLDC_44K_STEREO,
    ESC10_44K_OGG,
    MIMII_16K_MONO,
    Clip,
    assert_close,
    clip_bytes,
    encode,
    manifest,
)


def noise(seconds: float, sr: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((round(seconds * sr), channels))).astype(np.float32)


def rejected(
    data: bytes,
    kind: type[IngestError] = AudioError,
    *,
    max_seconds: float = 60.0,
    max_channels: int = 8,
    max_rate: int = 192000,
) -> IngestError:
    with pytest.raises(kind) as info:
        decode_audio(data, max_seconds=max_seconds, max_channels=max_channels, max_rate=max_rate)
    return info.value


@pytest.mark.parametrize("clip", manifest(), ids=lambda clip: clip.path.split("/")[-1])
def test_every_real_recording_decodes_and_embeds(clip: Clip) -> None:
    vectors, decoded = audio_to_embeddings(clip.read_bytes(), "logmel-v1", max_seconds=60.0)
    assert (decoded.sample_rate, decoded.channels) == (clip.sample_rate, clip.channels)
    assert decoded.samples.dtype == np.float32
    assert decoded.samples.shape[1] == clip.channels
    assert decoded.duration_s == pytest.approx(clip.duration_s, abs=0.01)
    assert vectors.shape == (math.floor(decoded.duration_s), 128)
    assert vectors.dtype == np.float32 and np.isfinite(vectors).all()


@pytest.mark.parametrize("path", [BLDC_16K_STEREO, MIMII_16K_MONO])
def test_flac_of_a_real_wav_embeds_identically(path: str) -> None:
    wav = decode_audio(clip_bytes(path), max_seconds=60.0)
    as_int16 = np.round(wav.samples * 32768).astype(np.int16)  # the WAVs are 16-bit PCM
    flac = decode_audio(encode(as_int16, wav.sample_rate, "FLAC", "PCM_16"), max_seconds=60.0)
    assert flac.samples.shape == wav.samples.shape
    assert_close(embed(flac.samples, flac.sample_rate), embed(wav.samples, wav.sample_rate))


def test_ogg_vorbis_is_decoded_at_its_native_rate() -> None:
    decoded = decode_audio(clip_bytes(ESC10_44K_OGG), max_seconds=60.0)
    assert decoded.sample_rate == 44100 and decoded.channels == 1
    assert np.abs(decoded.samples).max() <= 1.0 + 1e-6


def test_eight_channels_at_96_khz_are_downmixed_and_accepted() -> None:
    vectors, decoded = audio_to_embeddings(
        encode(noise(2.5, 96000, channels=8), 96000, "WAV", "FLOAT"), "logmel-v1", max_seconds=10
    )
    assert (decoded.channels, decoded.sample_rate) == (8, 96000)
    assert vectors.shape == (2, 128)


def test_nine_channels_are_rejected() -> None:
    error = rejected(encode(noise(1.5, 16000, channels=9), 16000))
    assert error.status == 422
    assert "9 channels" in error.detail and "at most 8" in error.detail


def test_channel_limit_is_configurable() -> None:
    error = rejected(clip_bytes(BLDC_16K_STEREO), max_channels=1)
    assert "2 channels" in error.detail


def test_non_audio_bytes_are_rejected() -> None:
    for data in (b"this is not audio at all" * 10, bytes(range(256)) * 4, b"RIFF"):
        error = rejected(data)
        assert error.status == 422 and "not readable audio" in error.detail
        assert "WAV" in error.detail  # says what would have been accepted


def test_empty_body_is_rejected() -> None:
    assert "empty" in rejected(b"").detail


def test_truncated_wav_is_rejected() -> None:
    data = clip_bytes(BLDC_44K_STEREO)
    for cut in (len(data) // 2, len(data) - 1, 44):
        error = rejected(data[:cut])
        assert "truncated" in error.detail


def test_truncated_flac_is_rejected() -> None:
    wav = decode_audio(clip_bytes(MIMII_16K_MONO), max_seconds=60.0)
    flac = encode(wav.samples, wav.sample_rate, "FLAC", "PCM_16")
    error = rejected(flac[: len(flac) // 2])
    assert "corrupt or truncated" in error.detail


def test_zero_frames_are_rejected() -> None:
    assert "no samples" in rejected(encode(np.zeros((0, 1), np.float32), 16000)).detail


def test_one_sample_is_rejected_with_the_minimum_stated() -> None:
    error = rejected(encode(np.zeros((1, 1), np.float32), 16000))
    assert "at least 1 s" in error.detail


def test_just_under_one_window_is_rejected_and_exactly_one_accepted() -> None:
    assert "at least 1 s" in rejected(encode(noise(1.0, 44100)[:-1], 44100)).detail
    vectors, _ = audio_to_embeddings(encode(noise(1.0, 44100), 44100), "logmel-v1", 60.0)
    assert vectors.shape == (1, 128)


def test_over_long_audio_is_rejected_from_the_header() -> None:
    error = rejected(clip_bytes(BLDC_44K_STEREO), max_seconds=5.0)
    assert "10.159 s" in error.detail and "at most 5 s" in error.detail


def test_unsupported_sample_rates_are_rejected() -> None:
    assert "4000 Hz" in rejected(encode(noise(2.0, 4000), 4000)).detail
    assert "44100 Hz" in rejected(clip_bytes(BLDC_44K_STEREO), max_rate=16000).detail


def test_other_containers_libsndfile_reads_are_unsupported_media() -> None:
    error = rejected(encode(noise(1.5, 16000), 16000, "AIFF"), UnsupportedMediaTypeError)
    assert error.status == 415 and "AIFF" in error.detail


def test_non_finite_samples_are_rejected_naming_the_window() -> None:
    samples = noise(3.0, 16000)
    samples[40000, 0] = np.nan
    error = rejected(encode(samples, 16000, "WAV", "FLOAT"))
    assert error.window == 2 and "frame 40000" in error.detail


def test_a_kind_the_server_cannot_compute_is_rejected_before_decoding() -> None:
    with pytest.raises(AudioError, match="openl3-512") as info:
        audio_to_embeddings(b"never decoded", "openl3-512", max_seconds=60.0)
    assert info.value.status == 422
