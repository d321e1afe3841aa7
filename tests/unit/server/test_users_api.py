"""Managing users and keys over the API: admins only; keys appear once."""

from __future__ import annotations

from tests.unit.server.conftest import LiveServer


def test_only_admins_manage_users_and_keys(live: LiveServer) -> None:
    for role in ("viewer", "editor"):
        with live.client(role) as client:
            assert client.get("/api/v1/users").status_code == 403
            assert client.get("/api/v1/keys").status_code == 403
            made = client.post("/api/v1/users", json={"name": "eve", "password": "eve-password"})
            assert made.status_code == 403
    with live.client("admin") as admin:
        created = admin.post(
            "/api/v1/users", json={"name": "dan", "password": "dan-password", "role": "editor"}
        )
        assert created.status_code == 201
        assert created.json()["role"] == "editor"
        assert "password" not in created.text
        duplicate = admin.post("/api/v1/users", json={"name": "dan", "password": "dan-password"})
        assert duplicate.status_code == 400
        key = admin.post("/api/v1/keys", json={"user": "dan", "name": "laptop"}).json()
        assert key["key"].startswith("mlzen_")
        listed = admin.get("/api/v1/keys", params={"user": "dan"})
        assert [k["prefix"] for k in listed.json()] == [key["prefix"]]
        assert key["key"] not in listed.text
        assert admin.post("/api/v1/keys", json={"user": "nobody"}).status_code == 404
        assert admin.delete("/api/v1/users/admin").status_code == 400  # not oneself
    dan = {"Authorization": f"Bearer {key['key']}"}
    with live.client() as anonymous:
        assert anonymous.get("/api/v1/auth/me", headers=dan).json()["role"] == "editor"
        with live.client("admin") as admin:
            assert admin.delete(f"/api/v1/keys/{key['prefix']}").status_code == 200
        assert anonymous.get("/api/v1/auth/me", headers=dan).status_code == 401
    with live.client("admin") as admin:
        assert admin.delete("/api/v1/users/dan").status_code == 200
        assert "dan" not in [u["name"] for u in admin.get("/api/v1/users").json()]
        assert admin.delete("/api/v1/users/dan").status_code == 404
