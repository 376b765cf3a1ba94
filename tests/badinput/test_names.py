"""Names are data, never code: SQL and shell metacharacters and long unicode within the
documented limits are stored and returned byte for byte, and change nothing else. (Names
over the limits, and metacharacters where a strict syntax applies, are in corpus.json.)"""

from __future__ import annotations

import psycopg
import pytest
from fastapi.testclient import TestClient

NAMES = [
    "x'); DROP TABLE machines;--",
    "\"; DELETE FROM sensors WHERE ''='",
    "$(rm -rf /) `reboot` | cat /etc/passwd > /dev/null & ; \\",
    "%s %(name)s {0} {name} \\x00-not-a-nul",
    "\U0001f916\u0301\u05d0\u00e9\u4e2d" * 40,  # 200 characters: the limit
    "Robert'); DROP TABLE students;--\r\n\t<script>alert(1)</script>",
]


@pytest.mark.parametrize("name", NAMES, ids=range(len(NAMES)))
def test_hostile_names_are_stored_verbatim(admin: TestClient, conn: psycopg.Connection,
                                           name: str) -> None:
    created = admin.post("/v1/machines", json={"name": name, "kind": name[:100],
                                               "location": name, "labels": {"k": name}})
    assert created.status_code == 201, created.text
    machine = created.json()
    assert (machine["name"], machine["location"], machine["labels"]) == (name, name,
                                                                        {"k": name})
    sensor = admin.post(f"/v1/machines/{machine['id']}/sensors",
                        json={"name": name, "embedding": {"kind": "logmel-v1"}})
    assert sensor.status_code == 201 and sensor.json()["name"] == name
    listed = admin.get("/v1/machines", params={"label": f"k:{name}"}).json()["items"]
    assert [m["id"] for m in listed] == [machine["id"]]
    assert admin.get("/v1/machines", params={"kind": name[:100]}).json()["items"][0]["name"] \
        == name
    stored = conn.execute("SELECT name FROM machines").fetchall()
    assert stored == [(name,)]  # exactly one row, the name as sent: nothing executed
    assert conn.execute("SELECT count(*) FROM sensors").fetchone() == (1,)


def test_hostile_names_are_escaped_on_every_page(app_client: TestClient) -> None:
    """The dashboard shows names as text: no markup of theirs reaches a page unescaped.
    (tests/service/ui/test_browser.py renders them in Chromium and checks no script ran.)"""
    from tests.conftest import ADMIN_KEY
    from tests.service.ui.helpers import sign_in

    headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
    ids = []
    for i, name in enumerate(NAMES):
        made = app_client.post("/v1/machines", headers=headers, json={
            "name": name, "kind": f"k{i}", "location": name, "labels": {"k": name}})
        assert made.status_code == 201, made.text
        ids.append(made.json()["id"])
        assert app_client.post(f"/v1/machines/{ids[-1]}/sensors", headers=headers, json={
            "name": name, "embedding": {"kind": "logmel-v1"}}).status_code == 201
    sign_in(app_client, ADMIN_KEY)
    pages = ["/", "/alerts", *(f"/machines/{i}" for i in ids),
             *(f"/machines/{i}/models" for i in ids)]
    for path in pages:
        html = app_client.get(path).text
        assert "<script>alert(1)</script>" not in html, path
        assert "alert(1)" not in html or "&lt;script&gt;alert(1)&lt;/script&gt;" in html \
            or "\\u003cscript\\u003ealert(1)" in html, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in app_client.get("/").text
