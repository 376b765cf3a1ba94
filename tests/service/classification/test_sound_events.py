"""Sound event detection on recordings built from real audio: a real machine (DCASE 2023
ToyCar, section 00) as background with real ESC-10 events mixed in at known times, through
the real API on a `logmel-v1-h250` sensor (1 s windows every 0.25 s).

Training recordings use the first half of every ToyCar clip and five clips per event class,
each mixed in four times at 0-12 dB over the background; they are labelled through the
labels API (event ranges with their class, everything between them `background`). Test
recordings use the second halves and the three other clips per class at +6 dB,
uploaded unlabelled after the classifier is trained; the scorer predicts them and
announces `event.detected`, and `GET /events` is scored against the known insertion times
with event-based F1 (onset collar 200 ms, as sed_eval's EventBasedMetrics)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import psycopg
from fastapi.testclient import TestClient
from psycopg_pool import ConnectionPool

from detectors.event_metrics import ClassScore, event_scores, micro_average
from service.settings import Settings
from tests.conftest import DATA_DIR
from tests.service.classification.helpers import (
    SR,
    Recording,
    count,
    esc10_clips,
    load_16k,
    make_sensor,
    mix,
    score_all,
    train,
    upload,
    wav,
    whole_seconds_ago,
)

CLASSES = ("chainsaw", "dog_bark", "rooster")
TRAIN_CLIPS, TRAIN_REPEATS, TRAIN_SNR_DB = 5, 4, (0.0, 12.0)
TEST_REPEATS, TEST_SNR_DB = 4, 6.0
RECORDING_S, EVENTS_PER_RECORDING, SLOT_S = 40, 3, 13.0
HALF_S = 6  # ToyCar clips are 12 s
GAP_S = 60  # between uploaded recordings
COLLAR_S = 0.2
CLASSIFIER = {"n_estimators": 100, "min_samples_leaf": 3}
# Defaults, except merge_gap_s: the reference joins sound separated by less than 1 s into
# one event (a 1 s window cannot see a shorter gap), so detection joins them as well.
EVENT_PARAMS = {"merge_gap_s": 1.0}
BACKGROUND = "background"
# Measured (36 reference events, fixed seeds), event-based F1 at a 200 ms onset collar:
# chainsaw 0.25, dog_bark 0.69, rooster 0.45, micro 0.48; at a 1 s collar 0.92 / 0.83 /
# 0.91 (micro 0.88). Detection itself is good; 200 ms asks more than 1 s windows can
# place: chainsaw onsets come out either ~0.25 s early or ~0.3 s late (clip-dependent),
# which one learned correction cannot fix. Without the learned timing corrections the
# 200 ms micro F1 was 0.21. Bars sit a little below the measured values.
MIN_F1 = {"chainsaw": 0.2, "dog_bark": 0.55, "rooster": 0.35}
MIN_MICRO_F1 = 0.4
MIN_F1_1S = 0.75


def _background(split: str, rng: np.random.Generator) -> np.ndarray:
    """RECORDING_S of the machine: the first 6 s of each ToyCar clip for training, the
    rest for testing (one machine, disjoint stretches of its recordings), in random order
    and looped."""
    halves = []
    for path in sorted((DATA_DIR / "dcase2023").glob("dcase2023_singles__ToyCar_*.wav")):
        clip = load_16k(path)
        halves.append(clip[:HALF_S * SR] if split == "train" else clip[HALF_S * SR:])
    parts = [halves[i] for i in rng.permutation(len(halves))]
    loop = np.concatenate(parts * (1 + RECORDING_S // sum(h.size // SR for h in halves)))
    return loop[:RECORDING_S * SR]


def recordings(split: str, seed: int) -> list[Recording]:
    rng = np.random.default_rng(seed)
    clips = {c: esc10_clips(c)[:TRAIN_CLIPS] if split == "train"
             else esc10_clips(c)[TRAIN_CLIPS:] for c in CLASSES}
    repeats = TRAIN_REPEATS if split == "train" else TEST_REPEATS
    items = [(c, p) for c in CLASSES for p in clips[c] for _ in range(repeats)]
    order = rng.permutation(len(items))
    built = []
    for first in range(0, len(items), EVENTS_PER_RECORDING):
        events = []
        for slot, index in enumerate(order[first:first + EVENTS_PER_RECORDING]):
            label, path = items[index]
            snr = rng.uniform(*TRAIN_SNR_DB) if split == "train" else TEST_SNR_DB
            events.append((label, path, 1.0 + slot * SLOT_S + rng.uniform(0, 1), snr))
        built.append(mix(_background(split, rng), events))
    return built


def _label_ranges(recording: Recording) -> list[tuple[str, float, float]]:
    """Event ranges with their class, and `background` everywhere between them."""
    ranges, cursor = [], 0.0
    for label, lo, hi in recording.events:
        if lo > cursor:
            ranges.append((BACKGROUND, cursor, lo))
        ranges.append((label, lo, hi))
        cursor = hi
    ranges.append((BACKGROUND, cursor, recording.seconds))
    return ranges


def _at(start: datetime, seconds: float) -> datetime:
    return start + timedelta(microseconds=round(seconds * 1e6))


def _upload_all(admin: TestClient, machine_id: str, sensor_id: str, built: list[Recording],
                start: datetime, labelled: bool) -> list[datetime]:
    starts = []
    for i, recording in enumerate(built):
        at = start + timedelta(seconds=i * (RECORDING_S + GAP_S))
        upload(admin, sensor_id, wav(recording.samples), at)
        starts.append(at)
        for label, lo, hi in _label_ranges(recording) if labelled else []:
            response = admin.post(f"/v1/machines/{machine_id}/labels", json={
                "start": _at(at, lo).isoformat(), "end": _at(at, hi).isoformat(),
                "label": label})
            assert response.status_code == 201, response.text
    return starts


def _evaluate(admin: TestClient, machine_id: str, built: list[Recording],
              starts: list[datetime],
              ) -> tuple[dict[str, ClassScore], list[dict[str, Any]], dict[float, Any]]:
    reference, estimated, found = [], [], []
    for recording, at in zip(built, starts, strict=True):
        offset = (at - starts[0]).total_seconds()
        reference += [(c, offset + lo, offset + hi) for c, lo, hi in recording.events]
        listed = admin.get(f"/v1/machines/{machine_id}/events", params={
            "start": at.isoformat(), "end": _at(at, RECORDING_S).isoformat()}).json()
        assert not listed["truncated"]
        for event in listed["items"]:
            if event["label"] == BACKGROUND:
                continue
            found.append(event)
            lo = (datetime.fromisoformat(event["start"]) - starts[0]).total_seconds()
            hi = (datetime.fromisoformat(event["end"]) - starts[0]).total_seconds()
            estimated.append((event["label"], lo, hi))
    wide = {c: event_scores(reference, estimated, collar=c) for c in (0.5, 1.0)}
    return event_scores(reference, estimated, collar=COLLAR_S), found, wide


def _trained(admin: TestClient, settings: Settings, pool: ConnectionPool, machine_id: str,
             sensor_id: str) -> dict[str, Any]:
    """Upload and label the training recordings, set the event rule and train; the event
    timing corrections the model learned."""
    training = recordings("train", seed=1)
    _upload_all(admin, machine_id, sensor_id, training, whole_seconds_ago(6 * 3600), True)
    assert score_all(pool) == (0, 0)
    # The rule first: training calibrates event timing with the machine's parameters.
    rule = admin.put(f"/v1/machines/{machine_id}/event-rules",
                     json={"notify_labels": list(CLASSES), "params": EVENT_PARAMS})
    assert rule.status_code == 200, rule.text
    assert admin.put(f"/v1/machines/{machine_id}/classifier", json={
        "algorithm": "random_forest", "params": CLASSIFIER}).status_code == 200
    job = train(admin, settings, pool, machine_id)
    assert job["state"] == "succeeded", job["error"]
    (model,) = admin.get(f"/v1/machines/{machine_id}/models",
                         params={"target": "classifier"}).json()["items"]
    timing: dict[str, Any] = model["metrics"]["event_timing"]
    assert set(CLASSES) <= set(timing)
    return timing


def test_sound_events_in_real_machine_audio(admin: TestClient, settings: Settings,
                                            pool: ConnectionPool,
                                            conn: psycopg.Connection) -> None:
    machine_id, sensor_id = make_sensor(admin, kind="logmel-v1-h250", name="toy-car-line")
    timing = _trained(admin, settings, pool, machine_id, sensor_id)
    admin.post("/v1/webhooks", json={"url": "http://127.0.0.1:9/hook",
                                     "events": ["event.detected"]})

    testing = recordings("test", seed=2)
    starts = _upload_all(admin, machine_id, sensor_id, testing, whole_seconds_ago(3600), False)
    score_all(pool)
    scores, found, wide = _evaluate(admin, machine_id, testing, starts)
    micro = micro_average(scores)
    print(f"\nevent-based F1, onset collar {COLLAR_S * 1000:.0f} ms, "
          f"{sum(len(r.events) for r in testing)} reference events:")
    for label, score in sorted(scores.items()):
        print(f"  {label:10s} P {score.precision:.2f} R {score.recall:.2f} F1 {score.f1:.2f} "
              f"(tp {score.tp}, fp {score.fp}, fn {score.fn})")
    print(f"  micro      F1 {micro.f1:.2f}")
    print("  onset corrections learned at training (s): " + ", ".join(
        f"{c} {timing[c]['onset_shift_s']:+.2f}" for c in CLASSES))
    for collar, found_scores in wide.items():
        print(f"  collar {collar:.1f} s: micro F1 {micro_average(found_scores).f1:.2f}, " +
              ", ".join(f"{k} {v.f1:.2f}" for k, v in sorted(found_scores.items())))
    for label, bar in MIN_F1.items():
        assert scores[label].f1 >= bar, (label, scores[label].as_dict())
    assert micro.f1 >= MIN_MICRO_F1
    assert all(score.f1 >= MIN_F1_1S for score in wide[1.0].values()), wide[1.0]
    # Every event of a class the rule names was announced exactly once.
    announced = count(conn, "SELECT count(*) FROM webhook_messages "
                            "WHERE event_type = 'event.detected'")
    assert announced == len(found)
