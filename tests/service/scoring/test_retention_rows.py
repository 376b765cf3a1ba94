"""Retention of the tables that grow with traffic, on the real database: finished webhook
messages (with their deliveries and attempts), finished training jobs, dead letters and,
when set, resolved alerts are deleted after their retention periods, in batches; pending
and recent rows stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
from psycopg_pool import ConnectionPool

from service.queries import retention as retention_queries
from service.scoring import retention
from service.settings import Settings
from tests.service.scoring.factories import activate_model, make_machine

OLD = timedelta(days=400)  # beyond every default retention


def _webhook(conn: psycopg.Connection) -> UUID:
    row = conn.execute("INSERT INTO webhooks (url, events, secret) VALUES "
                       "('http://127.0.0.1:9/hook', '{alert.firing}', 'whsec_x') "
                       "RETURNING id").fetchone()
    assert row is not None
    return UUID(str(row[0]))


def _message(conn: psycopg.Connection, webhook_id: UUID, name: str, created: datetime,
             state: str, attempts: int) -> None:
    conn.execute("INSERT INTO webhook_messages (id, event_type, body, created_at) "
                 "VALUES (%s, 'alert.firing', '{}', %s)", (name, created))
    row = conn.execute("INSERT INTO webhook_deliveries (webhook_id, message_id, state, "
                       "created_at) VALUES (%s, %s, %s, %s) RETURNING id",
                       (webhook_id, name, state, created)).fetchone()
    assert row is not None
    for _ in range(attempts):
        conn.execute("INSERT INTO webhook_attempts (delivery_id, attempted_at, status, "
                     "duration_ms) VALUES (%s, %s, 500, 1.0)", (row[0], created))


def _job(conn: psycopg.Connection, machine_id: UUID, state: str,
         finished: datetime | None) -> UUID:
    row = conn.execute("INSERT INTO jobs (machine_id, target, trigger, state, finished_at) "
                       "VALUES (%s, 'detector', 'manual', %s, %s) RETURNING id",
                       (machine_id, state, finished)).fetchone()
    assert row is not None
    return UUID(str(row[0]))


def _ids(conn: psycopg.Connection, query: str) -> set[str]:
    conn.commit()
    found = {str(row[0]) for row in conn.execute(query).fetchall()}
    conn.commit()
    return found


def test_finished_webhook_messages_go_with_their_deliveries_and_attempts(
        conn: psycopg.Connection, settings: Settings, pool: ConnectionPool) -> None:
    now = datetime.now(UTC)
    hook = _webhook(conn)
    _message(conn, hook, "msg_old_delivered", now - OLD, "delivered", 3)
    _message(conn, hook, "msg_old_failed", now - OLD, "failed", 2)
    _message(conn, hook, "msg_old_pending", now - OLD, "pending", 4)  # still being retried
    _message(conn, hook, "msg_recent", now - timedelta(days=1), "delivered", 1)
    conn.commit()

    removed = retention.enforce(settings, pool)

    assert removed["webhook_messages"] == 2
    assert _ids(conn, "SELECT id FROM webhook_messages") == {"msg_old_pending", "msg_recent"}
    assert _ids(conn, "SELECT message_id FROM webhook_deliveries") == {
        "msg_old_pending", "msg_recent"}
    attempts = conn.execute("SELECT d.message_id, count(*) FROM webhook_attempts a "
                            "JOIN webhook_deliveries d ON d.id = a.delivery_id "
                            "GROUP BY 1").fetchall()
    assert dict(attempts) == {"msg_old_pending": 4, "msg_recent": 1}
    assert conn.execute("SELECT count(*) FROM webhook_attempts").fetchone() == (5,)


def test_finished_jobs_go_unless_a_model_of_theirs_remains(
        conn: psycopg.Connection, settings: Settings, pool: ConnectionPool) -> None:
    now = datetime.now(UTC)
    machine_id, _ = make_machine(conn)
    old_failed = _job(conn, machine_id, "failed", now - OLD)
    old_succeeded = _job(conn, machine_id, "succeeded", now - OLD)
    with_model = _job(conn, machine_id, "succeeded", now - OLD)
    recent = _job(conn, machine_id, "failed", now - timedelta(days=1))
    queued = _job(conn, machine_id, "queued", None)
    conn.commit()
    version = activate_model(conn, machine_id)
    conn.execute("UPDATE models SET job_id = %s WHERE machine_id = %s AND version = %s",
                 (with_model, machine_id, version))
    conn.commit()

    removed = retention.enforce(settings, pool)

    assert removed["jobs"] == 2
    assert _ids(conn, "SELECT id FROM jobs") == {str(with_model), str(recent), str(queued)}
    assert not {str(old_failed), str(old_succeeded)} & _ids(conn, "SELECT id FROM jobs")


def test_rows_go_in_bounded_batches_and_the_rest_waits_for_the_next_run(
        conn: psycopg.Connection, settings: Settings, pool: ConnectionPool) -> None:
    now = datetime.now(UTC)
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO ingest_errors (source, reason, received_at) "
                        "VALUES ('mqtt', 'bad json', %s)",
                        [(now - OLD + timedelta(seconds=i),) for i in range(23)])
    conn.execute("INSERT INTO ingest_errors (source, reason) VALUES ('mqtt', 'fresh')")
    conn.commit()
    small = settings.model_copy(update={"retention_batch_rows": 5, "retention_max_batches": 3})

    assert retention.enforce(small, pool)["ingest_errors"] == 15  # 3 batches of 5
    assert retention.enforce(small, pool)["ingest_errors"] == 8
    assert retention.enforce(small, pool)["ingest_errors"] == 0
    assert _ids(conn, "SELECT reason FROM ingest_errors") == {"fresh"}


def test_row_pruning_yields_to_another_process_holding_the_retention_lock(
        conn: psycopg.Connection, settings: Settings, pool: ConnectionPool,
        database_url: str) -> None:
    conn.execute("INSERT INTO ingest_errors (source, reason, received_at) "
                 "VALUES ('mqtt', 'bad json', %s)", (datetime.now(UTC) - OLD,))
    conn.commit()
    with psycopg.connect(database_url) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (retention_queries.RETENTION_LOCK_KEY,))
        assert retention.prune_rows(settings, pool, datetime.now(UTC)) == {
            "webhook_messages": 0}
        other.execute("SELECT pg_advisory_unlock(%s)", (retention_queries.RETENTION_LOCK_KEY,))
    assert retention.prune_rows(settings, pool, datetime.now(UTC))["ingest_errors"] == 1


def _alert(conn: psycopg.Connection, machine_id: UUID, state: str,
           resolved: datetime | None, alert_type: str = "anomaly") -> str:
    row = conn.execute("INSERT INTO alerts (machine_id, type, state, starts_at, resolved_at) "
                       "VALUES (%s, %s, %s, %s, %s) RETURNING id",
                       (machine_id, alert_type, state, resolved or datetime.now(UTC),
                        resolved)).fetchone()
    assert row is not None
    return str(row[0])


def test_resolved_alerts_go_only_when_alert_retention_is_set(
        conn: psycopg.Connection, settings: Settings, pool: ConnectionPool) -> None:
    now = datetime.now(UTC)
    machine_id, _ = make_machine(conn)
    old_resolved = _alert(conn, machine_id, "resolved", now - OLD)
    recent = _alert(conn, machine_id, "resolved", now - timedelta(days=1))
    firing = _alert(conn, machine_id, "firing", None, "no_data")  # old or not, it stays
    conn.execute("UPDATE alerts SET starts_at = %s WHERE id = %s", (now - OLD, firing))
    conn.commit()
    everything = {old_resolved, recent, firing}

    assert "alerts" not in retention.enforce(settings, pool)  # the default keeps history
    assert _ids(conn, "SELECT id FROM alerts") == everything

    keep_30_days = settings.model_copy(update={"alerts_retention_days": 30.0})
    assert retention.enforce(keep_30_days, pool)["alerts"] == 1
    assert _ids(conn, "SELECT id FROM alerts") == {recent, firing}
