"""`earshot labels import|export` as a subprocess against the real API (uvicorn): an
Audacity label track written to a file goes in, the same track comes back out; a bad
line is refused (exit 1) with its number, nothing stored; bad arguments exit 2."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np

from tests.conftest import ADMIN_KEY
from tests.live import ROOT
from tests.service.classification.helpers import esc10_clips, load_16k, wav

TRACK = "0.000000\t5.000000\tdog_bark\n5.000000\t10.000000\train\n"
CLI_TIMEOUT_S = 60


def labels_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", "labels", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)


def test_import_and_export_through_the_cli(live_api: str, tmp_path: Path) -> None:
    http = httpx.Client(base_url=live_api, headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                        timeout=CLI_TIMEOUT_S)
    machine = http.post("/v1/machines", json={"name": "kennel", "kind": "room"}).json()["id"]
    sensor = http.post(f"/v1/machines/{machine}/sensors",
                       json={"name": "mic", "embedding": {"kind": "logmel-v1"}}).json()["id"]
    t0 = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    audio = np.concatenate([load_16k(esc10_clips("dog_bark")[0]),
                            load_16k(esc10_clips("rain")[0])])
    uploaded = http.post(f"/v1/sensors/{sensor}/audio", content=wav(audio),
                         params={"start": t0.isoformat()},
                         headers={"content-type": "audio/wav"})
    assert uploaded.status_code == 200, uploaded.text
    common = ("--url", live_api, "--key", ADMIN_KEY, "--start", t0.isoformat())

    bad = tmp_path / "bad.txt"
    bad.write_text(TRACK + "12.0\tx\tknock\n")
    refused = labels_cli("import", str(bad), "--sensor", sensor, *common)
    assert refused.returncode == 1 and "line 3" in refused.stderr, refused.stderr
    assert http.get(f"/v1/machines/{machine}/labels").json()["items"] == []

    good = tmp_path / "labels.txt"
    good.write_text(TRACK)
    done = labels_cli("import", str(good), "--sensor", sensor, *common)
    assert done.returncode == 0, done.stderr
    assert "2 label(s) stored" in done.stderr
    exported = labels_cli("export", "--machine", machine, "--end",
                          (t0 + timedelta(seconds=10)).isoformat(), *common)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == TRACK

    assert labels_cli("import", str(good), "--sensor", "nope", *common).returncode == 2
    missing = labels_cli("import", str(tmp_path / "none.txt"), "--sensor", sensor, *common)
    assert missing.returncode == 2 and "cannot read" in missing.stderr
