"""`earshot conditions add|list|delete` as a subprocess against the real API (uvicorn)."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from ingest.conditions_cli import attributes
from tests.conftest import ADMIN_KEY
from tests.live import ROOT

CLI_TIMEOUT_S = 60


def conditions_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", "conditions", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=CLI_TIMEOUT_S,
                          check=False)


def test_add_list_delete_through_the_cli(live_api: str) -> None:
    http = httpx.Client(base_url=live_api, headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                        timeout=CLI_TIMEOUT_S)
    machine = http.post("/v1/machines", json={"name": "press", "kind": "pump"}).json()["id"]
    common = ("--url", live_api, "--key", ADMIN_KEY, "--machine", machine)
    added = conditions_cli("add", *common, "--start", "2026-12-06T10:00:00Z",
                           "--end", "2026-12-06T10:05:00Z", "--attr", "rpm=1800",
                           "--attr", "load=high")
    assert added.returncode == 0, added.stderr
    condition_id = added.stdout.strip()
    assert "'load=high,rpm=1800'" in added.stderr
    named = conditions_cli("add", *common, "--start", "2026-12-06T11:00:00Z",
                           "--end", "2026-12-06T11:05:00Z", "--name", "cleaning")
    assert named.returncode == 0, named.stderr
    listed = conditions_cli("list", *common)
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["name"], r["attributes"]) for r in rows] == [
        ("load=high,rpm=1800", {"load": "high", "rpm": 1800}), ("cleaning", {})]

    reversed_range = conditions_cli("add", *common, "--start", "2026-12-06T12:00:00Z",
                                    "--end", "2026-12-06T11:00:00Z", "--name", "x")
    assert reversed_range.returncode == 1 and "must be after start" in reversed_range.stderr
    assert conditions_cli("add", *common, "--start", "noon", "--end",
                          "2026-12-06T11:00:00Z", "--name", "x").returncode == 2
    assert conditions_cli("add", *common, "--start", "2026-12-06T10:00:00Z", "--end",
                          "2026-12-06T11:00:00Z", "--attr", "rpm").returncode == 2

    deleted = conditions_cli("delete", *common, condition_id)
    assert deleted.returncode == 0, deleted.stderr
    again = conditions_cli("delete", *common, condition_id)
    assert again.returncode == 1 and "does not exist" in again.stderr
    names = [c["name"] for c in http.get(f"/v1/machines/{machine}/conditions").json()["items"]]
    assert names == ["cleaning"]


def test_attribute_values_keep_their_json_type() -> None:
    assert attributes(["rpm=1800", "ratio=0.5", "wet=true", "load=high", "note=a=b"]) == {
        "rpm": 1800, "ratio": 0.5, "wet": True, "load": "high", "note": "a=b"}
