"""Retrain crons in one scheduler process (in-process, real database): slots, scheduled
retrains, config changes picked up without a restart, and the registry's strictness."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from service.queries.model_configs import notify_scheduler
from service.scheduler import registry
from service.scheduler.cron import crontab_trigger, current_slot
from service.scheduler.main import SchedulerProcess
from service.settings import Settings
from tests.live import wait_until
from tests.service.scheduler.triggers import every_second
from tests.service.training.helpers import (
    configure,
    make_machine,
    real_windows,
    recent,
    store_baseline,
)


def fast(settings: Settings) -> Settings:
    return settings.model_copy(update={"scheduler_sync_s": 0.5, "scheduler_poll_s": 0.2,
                                       "train_heartbeat_s": 0.5, "scheduler_shutdown_s": 2.0})


def count(conn: psycopg.Connection, sql: str, *args: object) -> int:
    row = conn.execute(sql, args).fetchone()
    conn.commit()  # end the snapshot so the next poll sees new rows
    assert row is not None
    return int(row[0])


def test_current_slot_is_the_latest_fire_time() -> None:
    nightly = crontab_trigger("0 3 * * *")
    at = datetime(2026, 11, 25, 3, 0, 0, 400_000, tzinfo=UTC)
    assert current_slot(nightly, at) == datetime(2026, 11, 25, 3, 0, tzinfo=UTC)
    assert current_slot(nightly, datetime(2026, 11, 25, 3, 5, tzinfo=UTC)) is None  # late
    minutely = crontab_trigger("*/15 * * * *")
    assert current_slot(minutely, datetime(2026, 11, 25, 9, 30, 59, tzinfo=UTC)) == \
        datetime(2026, 11, 25, 9, 30, tzinfo=UTC)
    assert current_slot(every_second("* * * * *"),
                        datetime(2026, 11, 25, 9, 30, 7, 999_999, tzinfo=UTC)) == \
        datetime(2026, 11, 25, 9, 30, 7, tzinfo=UTC)


def test_scheduled_retrains_run_once_per_slot(settings: Settings,
                                              conn: psycopg.Connection) -> None:
    machine_id, (sensor_id,) = make_machine(conn)
    store_baseline(conn, machine_id, sensor_id, real_windows(), recent(3600))
    configure(conn, machine_id, "ecod", retrain_cron="* * * * *")
    process = SchedulerProcess(fast(settings), loops=[], periodic=[],
                               trigger_factory=every_second)
    process.start()
    try:
        wait_until(lambda: count(conn, "SELECT count(*) FROM models") >= 3, 60,
                   "three scheduled retrains")
    finally:
        process.shutdown()

    rows = conn.execute("SELECT slot, state, model_version, attempts FROM jobs "
                        "WHERE trigger = 'cron' ORDER BY slot").fetchall()
    slots = [r[0] for r in rows]
    assert len(slots) == len(set(slots)) >= 3
    assert all(s.microsecond == 0 for s in slots)  # whole-second slots
    succeeded = [r for r in rows if r[1] == "succeeded"]
    versions = sorted(r[2] for r in succeeded)
    assert versions == list(range(1, len(succeeded) + 1)) and all(r[3] == 1 for r in succeeded)
    assert count(conn, "SELECT count(*) FROM models") == len(succeeded)
    assert count(conn, "SELECT count(DISTINCT job_id) FROM models") == len(succeeded)


def test_cron_jobs_follow_config_changes(settings: Settings, conn: psycopg.Connection) -> None:
    process = SchedulerProcess(fast(settings).model_copy(update={"scheduler_sync_s": 3600}),
                               loops=[], periodic=[], trigger_factory=every_second)
    machine_id, _ = make_machine(conn)
    job_name = f"retrain:{machine_id}:detector"
    process.start()
    try:
        wait_until(lambda: process.cron.crons == {}, 10, "the first sync")

        def change(cron: str | None) -> None:
            configure(conn, machine_id, "ecod", retrain_cron=cron)
            notify_scheduler(conn, f"config:{machine_id}")  # as PUT …/detector does
            conn.commit()

        change("0 3 * * *")
        wait_until(lambda: process.cron.crons == {job_name: "0 3 * * *"}, 10, "a new cron")
        assert process.scheduler.get_job(job_name) is not None
        change("30 4 * * 1")
        wait_until(lambda: process.cron.crons == {job_name: "30 4 * * 1"}, 10, "a change")
        change(None)
        wait_until(lambda: process.cron.crons == {}, 10, "the cron removed")
        assert process.scheduler.get_job(job_name) is None
    finally:
        process.shutdown()


def test_registry_entries_resolve_and_bad_ones_stop_startup(settings: Settings) -> None:
    names = registry.BACKGROUND_LOOPS + [name for name, _ in registry.PERIODIC_JOBS]
    assert set(registry.resolve_all(names)) == set(names)  # every plugged-in module exists
    assert all(interval > 0 for _, interval in registry.PERIODIC_JOBS)
    with pytest.raises(registry.RegistryError) as raised:
        SchedulerProcess(settings, loops=["service.nowhere:run", "service.db:no_such_fn"],
                         periodic=[])
    assert "cannot import service.nowhere" in str(raised.value)
    assert "has no function 'no_such_fn'" in str(raised.value)
    with pytest.raises(registry.RegistryError, match="expected 'module:function'"):
        SchedulerProcess(settings, loops=[], periodic=[("service.db.make_pool", 1.0)])


def test_the_retention_interval_is_a_setting(settings: Settings) -> None:
    name = "service.scoring.retention:enforce"
    assert dict(registry.PERIODIC_JOBS)[name] == settings.retention_interval_s == 3600.0
    process = SchedulerProcess(settings.model_copy(update={"retention_interval_s": 20.0}),
                               loops=[])
    assert {n: interval for n, _, interval in process.periodic}[name] == 20.0
