"""compose.yaml against the code it deploys. Docker cannot run on our machines (no engine,
no image registry), so the scaled topology is tested with real processes in
`make test-scale`; this keeps the compose file from drifting away from that: every
command is a real `earshot` (or `dask`) command, every EARSHOT_ variable a real setting
whose value the settings accept, every host a service of the file, every bridge its own
MQTT client id, and every image pinned."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.cli import _parser
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ADMIN_KEY = "k" * 40  # stands in for ${EARSHOT_ADMIN_KEY}
OURS = {name: svc for name, svc in SERVICES.items() if svc.get("build") == "."}
HOST = re.compile(r"^(?:postgresql|mqtt|tcp)://(?:[^@/]*@)?([^:/]+)")


def _earshot_commands() -> set[str]:
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def _env(svc: dict[str, Any]) -> dict[str, str]:
    return {k: str(v) for k, v in (svc.get("environment") or {}).items()}


def _substituted(value: str) -> str:
    """${VAR...} references as compose would fill them in a real deployment."""
    value = re.sub(r"\$\{EARSHOT_ADMIN_KEY[^}]*\}", ADMIN_KEY, value)
    return re.sub(r"\$\{[A-Z_]+[^}]*\}", "secret", value)


def test_the_topology_has_every_kind_of_process_the_scaling_doc_describes() -> None:
    commands = [tuple(s.get("command") or s.get("entrypoint") or ()) for s in SERVICES.values()]
    assert commands.count(("api",)) >= 2
    assert commands.count(("bridge",)) >= 2
    assert SERVICES["worker"]["deploy"]["replicas"] >= 2
    assert SERVICES["dask-worker"]["deploy"]["replicas"] >= 2
    assert {"db", "db-replica", "mqtt", "migrate", "dask-scheduler"} <= set(SERVICES)


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_earshot_service_runs_a_real_command(name: str) -> None:
    svc = OURS[name]
    if "entrypoint" in svc:  # the Dask processes, from the same image
        entry = svc["entrypoint"]
        assert entry[:2] in (["dask", "scheduler"], ["dask", "worker"])
        done = subprocess.run([str(Path(sys.executable).parent / "dask"), entry[1], "--help"],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        for flag in (a for a in entry[2:] if a.startswith("--")):
            assert flag in done.stdout, f"{name}: dask {entry[1]} has no {flag}"
    else:
        assert svc["command"][0] in _earshot_commands()


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_earshot_variable_is_a_setting_with_an_accepted_value(name: str) -> None:
    env = {k: _substituted(v) for k, v in _env(OURS[name]).items() if k.startswith("EARSHOT_")}
    fields = {f"EARSHOT_{field.upper()}" for field in Settings.model_fields}
    assert set(env) <= fields, f"{name}: not settings: {set(env) - fields}"
    Settings.model_validate({k.removeprefix("EARSHOT_").lower(): v for k, v in env.items()})


def test_every_host_named_in_a_url_is_a_service_and_reads_go_to_the_replica() -> None:
    for name, svc in OURS.items():
        for key, value in _env(svc).items():
            found = HOST.match(value)
            if key.endswith(("_URL", "_SCHEDULER")) and found:
                assert found.group(1) in SERVICES, f"{name}.{key} names {found.group(1)}"
    for api in ("api-1", "api-2"):
        assert "@db-replica:" in _env(SERVICES[api])["EARSHOT_DATABASE_READ_URL"]
        assert "@db:" in _env(SERVICES[api])["EARSHOT_DATABASE_URL"]


def test_every_bridge_keeps_its_own_client_id_and_comes_back_when_it_dies() -> None:
    bridges = {n: s for n, s in OURS.items() if s.get("command") == ["bridge"]}
    ids = [_env(s)["EARSHOT_MQTT_CLIENT_ID"] for s in bridges.values()]
    assert len(set(ids)) == len(ids) == len(bridges)
    assert all(s.get("restart") == "always" for s in bridges.values())


def test_dependencies_name_services_and_images_are_pinned() -> None:
    for name, svc in SERVICES.items():
        depends = svc.get("depends_on") or {}
        assert set(depends) <= set(SERVICES), name
        image = svc.get("image")
        if image:
            tag = image.rpartition(":")[2]
            assert ":" in image and tag not in ("", "latest"), f"{name}: {image} is not pinned"


def test_the_replica_init_script_is_valid_shell() -> None:
    for script in (ROOT / "deploy" / "db-init").glob("*.sh"):
        done = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
