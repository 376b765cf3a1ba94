"""Real ESC-10 audio in the audio store of two machines, for fleet embedding tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient

from tests.service.classification.helpers import (
    esc10_clips,
    load_16k,
    make_sensor,
    upload,
    wav,
    whole_seconds_ago,
)

# Quick runs: the box is shared; a real run trains for tens of epochs on thousands of windows.
QUICK = {"max_epochs": 2, "max_windows": 200}


def fleet_with_audio(admin: TestClient, clips: int = 2) -> tuple[list[str], datetime]:
    """Two machines, each with `clips` ESC-10 fold-1 clips (5 s each) of its own sound
    uploaded as audio; (sensor ids, a time after the last clip)."""
    sensors = []
    at = whole_seconds_ago(3600)
    for name, sound in (("pump-a", "chainsaw"), ("fan-b", "rooster")):
        _, sensor_id = make_sensor(admin, name=name)
        for path in esc10_clips(sound)[:clips]:
            upload(admin, sensor_id, wav(load_16k(path)), at)
            at += timedelta(seconds=30)
        sensors.append(sensor_id)
    return sensors, at
