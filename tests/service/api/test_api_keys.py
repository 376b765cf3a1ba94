from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import ADMIN_KEY


def test_create_list_and_revoke_key(admin: TestClient) -> None:
    created = admin.post("/v1/api-keys", json={"name": "grafana", "role": "read"})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("esk_")
    listed = admin.get("/v1/api-keys").json()["items"]
    assert [k["name"] for k in listed] == ["grafana"]
    assert "key" not in listed[0]
    revoked = admin.delete(f"/v1/api-keys/{created.json()['id']}")
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None


def test_missing_garbage_and_revoked_tokens_get_401(admin: TestClient) -> None:
    key = admin.post("/v1/api-keys", json={"name": "tmp", "role": "admin"}).json()
    admin.delete(f"/v1/api-keys/{key['id']}")
    for header in (None, "Bearer garbage", f"Bearer {key['key']}", "Basic abc"):
        headers = {"Authorization": header} if header else {}
        response = admin.get("/v1/api-keys", headers=headers) if header else \
            admin.get("/v1/api-keys", headers={"Authorization": ""})
        assert response.status_code == 401, (header, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["www-authenticate"] == "Bearer"


def test_read_key_cannot_manage_keys(admin: TestClient) -> None:
    read_key = admin.post("/v1/api-keys", json={"name": "viewer", "role": "read"}).json()["key"]
    response = admin.post("/v1/api-keys", json={"name": "x", "role": "admin"},
                          headers={"Authorization": f"Bearer {read_key}"})
    assert response.status_code == 403
    assert admin.get("/v1/api-keys", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
                     ).status_code == 200


def test_invalid_role_is_422_problem(admin: TestClient) -> None:
    response = admin.post("/v1/api-keys", json={"name": "x", "role": "root"})
    assert response.status_code == 422
    assert response.json()["title"] == "Invalid request"
    assert "role" in response.json()["detail"]
