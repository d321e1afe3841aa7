"""The REST API's request and response bodies (pydantic models).

Every route answers with one of these, so ``/openapi.json`` describes every response
exactly. Times are UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field

from mlzen.server.auth import Role, User

T = TypeVar("T")


class Health(BaseModel):
    status: str


class ErrorBody(BaseModel):
    """What a request that failed on purpose answers."""

    error: str = Field(description="The mlzen error class, e.g. NotFoundError.")
    detail: str = Field(description="What went wrong and how to fix it.")
    fields: dict[str, str | int | float | bool] = Field(default_factory=dict)


class Page(BaseModel, Generic[T]):
    """One page of a list: ``items`` from ``offset``, of ``total`` matching ones."""

    items: list[T]
    total: int
    limit: int
    offset: int


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=1024)


class LoginResponse(BaseModel):
    user: User


class UserOut(BaseModel):
    id: str
    name: str
    role: Role
    created_at: datetime


class Message(BaseModel):
    message: str


JSONValue = Any
