"""``/api/v1/users`` and ``/api/v1/keys``: managing who may use the server (admin)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, status
from fastapi.concurrency import run_in_threadpool

from mlzen.errors import ConfigError
from mlzen.server import auth
from mlzen.server.auth import AdminUser, require_admin
from mlzen.server.deps import StoreDep
from mlzen.server.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyOut,
    Message,
    UserCreate,
    UserOut,
)
from mlzen.store import users

router = APIRouter(dependencies=[Depends(require_admin)], tags=["users"])


@router.get("/users", response_model=list[UserOut])
def list_users(store: StoreDep) -> list[UserOut]:
    """Every user and their role."""
    return [UserOut.model_validate(row) for row in users.list_users(store)]


@router.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED)
async def create_user(body: UserCreate, store: StoreDep) -> UserOut:
    """Create a user (their password is stored as an argon2id hash)."""
    user = await run_in_threadpool(auth.create_user, store, body.name, body.password, body.role)
    return UserOut.model_validate(users.get_user(store, user.name))


@router.delete("/users/{name}", response_model=Message)
def delete_user(name: str, store: StoreDep, admin: AdminUser) -> Message:
    """Delete a user and their keys. Admins cannot delete themselves."""
    if name == admin.name:
        raise ConfigError(
            f"'{name}' is the user making this request. Another admin has to delete it.",
            user_name=name,
        )
    users.delete_user(store, name)
    return Message(message=f"Deleted user '{name}' and their API keys.")


@router.get("/keys", response_model=list[ApiKeyOut])
def list_keys(store: StoreDep, user: str | None = None) -> list[ApiKeyOut]:
    """API keys by prefix, optionally of one user."""
    return [ApiKeyOut.model_validate(row) for row in users.list_api_keys(store, user)]


@router.post("/keys", response_model=ApiKeyCreated, status_code=status.HTTP_201_CREATED)
def create_key(body: ApiKeyCreate, store: StoreDep) -> ApiKeyCreated:
    """Create an API key for a user; the answer is the only place the key appears."""
    key = auth.create_api_key(store, body.user, body.name)
    return ApiKeyCreated(
        key=key, prefix=key[: auth.PREFIX_LENGTH], name=body.name, user_name=body.user
    )


@router.delete("/keys/{prefix}", response_model=Message)
def revoke_key(prefix: str, store: StoreDep) -> Message:
    """Revoke the key with this prefix; it stops working at once."""
    users.revoke_api_key(store, prefix)
    return Message(message=f"Revoked API key {prefix}.")
