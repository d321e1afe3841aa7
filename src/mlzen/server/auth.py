"""Who is calling: users, roles, passwords, API keys and session cookies.

Roles rank ``admin > editor > viewer``: a viewer reads, an editor also changes and
deletes (runs, model stages), an admin also manages users and keys.

- Passwords are hashed with argon2id (argon2-cffi); only the hash is stored.
- API keys look like ``mlzen_<43 random characters>``. They are shown once; the store
  keeps the first :data:`PREFIX_LENGTH` characters (to find the row) and a SHA-256 hash
  of the whole key. A key carries 256 random bits, so a fast hash is as safe as a slow
  one here, and checking a key costs microseconds rather than argon2's tens of
  milliseconds on every request. Keys are accepted only in the ``Authorization:
  Bearer`` header, never in a query string (which access logs record).
- The dashboard's session cookie ``mlzen_session`` names a session kept in the store
  (:mod:`mlzen.server.sessions`); a state-changing request made with it must carry the
  session's CSRF token. Logins are throttled (:mod:`mlzen.server.throttle`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from contextvars import ContextVar
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Literal

from fastapi import Depends, HTTPException, Request, Response, status
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from mlzen.errors import ConfigError
from mlzen.server import sessions
from mlzen.server.sessions import SESSION_COOKIE as SESSION_COOKIE
from mlzen.server.sessions import SESSION_SECONDS as SESSION_SECONDS
from mlzen.store import users as user_rows
from mlzen.store.metadata import MetadataStore, utcnow

if TYPE_CHECKING:
    from argon2 import PasswordHasher

Role = Literal["viewer", "editor", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "editor", "admin")
RANK = {role: rank for rank, role in enumerate(ROLES)}
KEY_PREFIX = "mlzen_"
PREFIX_LENGTH = len(KEY_PREFIX) + 8
# last_used_at is written at most this often per key, so reads stay reads.
TOUCH_INTERVAL = timedelta(minutes=1)
MIN_PASSWORD_LENGTH = 8


class User(BaseModel):
    """The authenticated caller."""

    id: str
    name: str
    role: Role

    def can(self, role: Role) -> bool:
        """Whether this user holds ``role`` or a higher one."""
        return RANK[self.role] >= RANK[role]


# -- passwords ---------------------------------------------------------------------------

_hasher: PasswordHasher | None = None


def _password_hasher() -> PasswordHasher:
    global _hasher
    if _hasher is None:
        from argon2 import PasswordHasher

        _hasher = PasswordHasher()
    return _hasher


def hash_password(password: str) -> str:
    """An argon2id hash of ``password`` (salted; the only form ever stored)."""
    return _password_hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return _password_hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_role(role: str) -> Role:
    if role not in RANK:
        raise ConfigError(
            f"Unknown role '{role}'. Use one of: {', '.join(reversed(ROLES))}.", role=role
        )
    return role  # type: ignore[return-value]


def create_user(store: MetadataStore, name: str, password: str, role: str = "viewer") -> User:
    """Create a server user with a hashed password.

    Raises:
        ConfigError: Bad name, role or too short a password, or the name is taken.
    """
    checked = check_role(role)
    if not name or len(name) > 255 or any(c.isspace() for c in name):
        raise ConfigError(
            f"User name {name!r} is not valid. Use 1-255 characters without spaces.",
            user_name=name,
        )
    _check_password(name, password)
    user_id = user_rows.create_user(
        store, name=name, password_hash=hash_password(password), role=checked
    )
    return User(id=user_id, name=name, role=checked)


def set_password(store: MetadataStore, name: str, password: str) -> None:
    """Give user ``name`` a new password; every session of theirs ends.

    Raises:
        ConfigError: The password is too short.
        NotFoundError: No such user.
    """
    _check_password(name, password)
    user_rows.set_password_hash(store, name, hash_password(password))


def _check_password(name: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ConfigError(
            f"The password for '{name}' is too short. Use at least {MIN_PASSWORD_LENGTH} "
            "characters.",
            user_name=name,
        )


_DUMMY_HASH: str | None = None


def authenticate_password(store: MetadataStore, name: str, password: str) -> User | None:
    """The user ``name`` if ``password`` is theirs, else ``None``."""
    global _DUMMY_HASH
    row = user_rows.user_row(store, name=name)
    if row is None:
        # Spend the same time as a real check, so timing does not reveal which names exist.
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
        verify_password(_DUMMY_HASH, password)
        return None
    if not verify_password(row["password_hash"], password):
        return None
    return User(id=row["id"], name=row["name"], role=row["role"])


# -- API keys ----------------------------------------------------------------------------


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(store: MetadataStore, user_name: str, name: str = "default") -> str:
    """Create an API key for ``user_name``; returns the key, which is never stored."""
    from sqlalchemy.exc import IntegrityError

    for _ in range(5):
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        try:
            user_rows.create_api_key(
                store,
                user_name=user_name,
                name=name,
                prefix=key[:PREFIX_LENGTH],
                key_hash=hash_api_key(key),
            )
        except IntegrityError:
            continue  # prefix collision (48 random bits): draw another key
        return key
    raise ConfigError("Could not draw an unused API key prefix. Try again.")


def user_from_api_key(store: MetadataStore, key: str) -> User | None:
    """The owner of ``key`` if it is a valid, unrevoked key."""
    if not key.startswith(KEY_PREFIX) or len(key) <= PREFIX_LENGTH:
        return None
    row = user_rows.key_with_user(store, key[:PREFIX_LENGTH])
    if row is None or not hmac.compare_digest(row["key_hash"], hash_api_key(key)):
        return None
    now = utcnow()
    if row["last_used_at"] is None or now - row["last_used_at"] > TOUCH_INTERVAL:
        user_rows.touch_api_key(store, row["id"], now)
    return User(id=row["user_id"], name=row["user_name"], role=row["role"])


# -- session cookies ---------------------------------------------------------------------


def set_session_cookie(
    response: Response, user: User, *, store: MetadataStore | None = None
) -> str:
    """Log ``user`` in on this response: a new session, in an HttpOnly, SameSite=Lax
    cookie (Secure over HTTPS). Returns the session's CSRF token.

    Args:
        store: The store holding the user; by default that of the app serving the
            current request.
    """
    token, csrf_token = sessions.start(store or current_store(), user.id)
    sessions.set_cookie(response, token, secure=_current_https.get(False))
    return csrf_token


def end_session(request: Request, response: Response) -> None:
    """Log out on this response: the request's session ends in the store (a copy of
    its cookie no longer works) and the cookie is removed."""
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        sessions.end(request.app.state.store, token)
    sessions.clear_cookie(response)


def is_https() -> bool:
    """Whether the request being served came over HTTPS (cookies are then Secure)."""
    return _current_https.get(False)


# -- requests ----------------------------------------------------------------------------

_current_store: ContextVar[MetadataStore] = ContextVar("mlzen_server_store")
_current_https: ContextVar[bool] = ContextVar("mlzen_server_https")


def current_store() -> MetadataStore:
    """The metadata store of the app serving the current request."""
    try:
        return _current_store.get()
    except LookupError:
        raise ConfigError(
            "No mlzen server request is being served here. Pass store= explicitly."
        ) from None


class StoreContextMiddleware:
    """Makes the app's store known to :func:`current_store` (and whether the request
    came over HTTPS, for the cookie's ``Secure`` flag) while a request runs."""

    def __init__(self, app: ASGIApp, store: MetadataStore) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _current_store.set(self.store)
        https = _current_https.set(scope.get("scheme") in ("https", "wss"))
        try:
            await self.app(scope, receive, send)
        finally:
            _current_https.reset(https)
            _current_store.reset(token)


def user_from_request(request: Request) -> User | None:
    """The caller of ``request``, from its ``Authorization: Bearer`` API key or its
    session cookie; ``None`` when it carries neither valid one. Cached on the request."""
    if hasattr(request.state, "user"):
        return request.state.user  # type: ignore[no-any-return]
    store: MetadataStore = request.app.state.store
    user: User | None = None
    session: sessions.Session | None = None
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        user = user_from_api_key(store, credentials.strip())
    else:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            session = sessions.find(store, token)
        if session is not None:
            user = User(id=session.user_id, name=session.user_name, role=session.role)  # type: ignore[arg-type]
    request.state.user = user
    # Set only for a caller authenticated by the cookie: what it changes needs CSRF checks.
    request.state.session = session
    return user


def _require(role: Role) -> Callable[[Request], User]:
    def dependency(request: Request) -> User:
        user = user_from_request(request)
        if user is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="Not authenticated. Send 'Authorization: Bearer <API key>' or log in "
                "at POST /api/v1/auth/login.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        session: sessions.Session | None = request.state.session
        if session is not None and request.method not in sessions.SAFE_METHODS:
            problem = sessions.csrf_problem(
                request, session.csrf_token, request.headers.get(sessions.CSRF_HEADER)
            )
            if problem:
                raise HTTPException(status.HTTP_403_FORBIDDEN, detail=problem)
        if not user.can(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"This needs the '{role}' role; user '{user.name}' is '{user.role}'. "
                f"An admin can change it with 'mlzen server users create' or grant a key of "
                "a user with that role.",
            )
        return user

    dependency.__name__ = f"require_{role}"
    return dependency


require_viewer = _require("viewer")
require_editor = _require("editor")
require_admin = _require("admin")

ViewerUser = Annotated[User, Depends(require_viewer)]
EditorUser = Annotated[User, Depends(require_editor)]
AdminUser = Annotated[User, Depends(require_admin)]
