"""The scorer's cache of loaded detectors is bounded (Settings.scoring_model_cache): a
worker serving more machines than it holds drops the least recently used and reloads
them from the database when their windows come back, and scores them all the same."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
import pytest

from service.scoring.scorer import ActiveModel, Scorer, default_loader
from service.training import models as training_models
from tests.service.scoring.factories import activate_model, bldc, ingest, make_machine


@pytest.fixture(autouse=True)
def _fresh_model_cache() -> None:
    training_models.clear_cache()  # versions restart at 1 in every test database


def _scored(conn: psycopg.Connection, machine_id: UUID) -> int:
    conn.commit()
    row = conn.execute("SELECT count(DISTINCT t) FROM scores WHERE machine_id = %s",
                       (machine_id,)).fetchone()
    return int(row[0]) if row else 0


def test_a_scorer_holds_at_most_its_cache_of_models_and_still_scores_every_machine(
        conn: psycopg.Connection) -> None:
    loads: list[UUID] = []

    def counting_loader(c: psycopg.Connection, machine_id: UUID) -> ActiveModel | None:
        loads.append(machine_id)
        return default_loader(c, machine_id)

    machines = []
    for _ in range(3):
        machine_id, (sensor,) = make_machine(conn)
        activate_model(conn, machine_id)
        machines.append((machine_id, sensor))
    scorer = Scorer(loader=counting_loader, model_cache=2)
    vectors = bldc("healthy", "test")[:5]
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    for round_ in range(2):  # each machine in turn, twice: with room for two, all reload
        for _machine, sensor in machines:
            ingest(conn, sensor, start + timedelta(minutes=10 * round_), vectors)
            while scorer.step(conn).claimed:
                pass
            assert len(scorer._models) <= 2
    assert [_scored(conn, m) for m, _ in machines] == [10, 10, 10]
    assert loads == [m for m, _ in machines] * 2


def test_a_cached_model_is_not_reloaded(conn: psycopg.Connection) -> None:
    loads: list[UUID] = []

    def counting_loader(c: psycopg.Connection, machine_id: UUID) -> ActiveModel | None:
        loads.append(machine_id)
        return default_loader(c, machine_id)

    machine_id, (sensor,) = make_machine(conn)
    activate_model(conn, machine_id)
    scorer = Scorer(loader=counting_loader, model_cache=2)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    for minute in range(3):
        ingest(conn, sensor, start + timedelta(minutes=minute), bldc("healthy", "test")[:5])
        while scorer.step(conn).claimed:
            pass
    assert _scored(conn, machine_id) == 15
    assert loads == [machine_id]
