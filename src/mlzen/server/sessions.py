"""Dashboard sessions, and the CSRF checks that keep other sites from using them.

Logging in (the dashboard's form, or ``POST /api/v1/auth/login``) starts a session: the
``mlzen_session`` cookie (HttpOnly, SameSite=Lax, and Secure over HTTPS) carries a random
token, and the store's ``server_sessions`` table a row under the token's SHA-256 with the
user, a CSRF token and the expiry (:data:`SESSION_SECONDS`). The row, not the cookie, is
the session: logging out deletes it, as deleting the user or changing their password
deletes all of theirs, and every server process over the store sees that at once. A
copied cookie is worth nothing after logout.

A request that changes something (any method but GET, HEAD and OPTIONS) and is
authenticated by the cookie must

- carry the session's CSRF token: the dashboard's forms hold it in the hidden field
  ``csrf_token``; a script sends it in the ``X-CSRF-Token`` header (the login answer
  gives it);
- come from this origin: a browser's ``Sec-Fetch-Site`` header (or, without it, its
  ``Origin``) must not name another site, not even one on the same host at another port.

The login form, before any session exists, holds a pre-session token that must equal the
``mlzen_login`` cookie set with the form, and obeys the same origin rule. A request with
an API key (``Authorization: Bearer``) carries no credential the browser adds by itself,
and needs none of this.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from mlzen.store import users as user_rows
from mlzen.store.metadata import utcnow

if TYPE_CHECKING:
    from fastapi import Request, Response

    from mlzen.store.metadata import MetadataStore

SESSION_COOKIE = "mlzen_session"
LOGIN_COOKIE = "mlzen_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SESSION_SECONDS = 7 * 24 * 3600
LOGIN_FORM_SECONDS = 24 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Longer than any token mlzen makes: a cookie beyond it is not looked up.
_MAX_TOKEN = 128


@dataclass(frozen=True)
class Session:
    """A live session: whose it is, and the CSRF token its forms must carry."""

    user_id: str
    user_name: str
    role: str
    csrf_token: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(store: MetadataStore, user_id: str) -> tuple[str, str]:
    """Start a session for ``user_id``; returns its token (for the cookie, never stored)
    and its CSRF token."""
    token = secrets.token_urlsafe(32)
    csrf_token = secrets.token_urlsafe(32)
    user_rows.create_session(
        store,
        session_id=_hash(token),
        user_id=user_id,
        csrf_token=csrf_token,
        expires_at=utcnow() + timedelta(seconds=SESSION_SECONDS),
    )
    return token, csrf_token


def find(store: MetadataStore, token: str) -> Session | None:
    """The live session ``token`` belongs to, if any (not ended, not expired)."""
    if not token or len(token) > _MAX_TOKEN:
        return None
    row = user_rows.session_with_user(store, _hash(token))
    if row is None:
        return None
    return Session(row["user_id"], row["user_name"], row["role"], row["csrf_token"])


def end(store: MetadataStore, token: str) -> None:
    """End the session ``token`` belongs to, if it is live."""
    if token and len(token) <= _MAX_TOKEN:
        user_rows.delete_session(store, _hash(token))


def set_cookie(response: Response, token: str, *, secure: bool) -> None:
    """Put the session token in the ``mlzen_session`` cookie of ``response``."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="lax",
        # Over HTTPS (e.g. behind a TLS proxy passing the scheme) the browser must never
        # send it over plain HTTP.
        secure=secure,
        path="/",
    )


def clear_cookie(response: Response) -> None:
    """Remove the session cookie."""
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")


# -- CSRF --------------------------------------------------------------------------------


def login_form_token(request: Request) -> str:
    """The pre-session token for a login form: the browser's ``mlzen_login`` cookie if it
    has a well-formed one, else a new one (which :func:`set_login_cookie` must set)."""
    token = request.cookies.get(LOGIN_COOKIE, "")
    if 32 <= len(token) <= _MAX_TOKEN:
        return token
    return secrets.token_urlsafe(32)


def set_login_cookie(response: Response, token: str, *, secure: bool) -> None:
    """Set the ``mlzen_login`` cookie the login form's token must match."""
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=LOGIN_FORM_SECONDS,
        httponly=True,
        samesite="strict",
        secure=secure,
        path="/login",
    )


def cross_site(request: Request) -> str | None:
    """Why ``request`` looks sent by a page of another site, or ``None``.

    Browsers say where a request comes from in ``Sec-Fetch-Site``; ``same-site`` counts
    as foreign too, since another port of this host is same-site. Without that header
    (older browsers), an ``Origin`` must be this server's own. Clients that send neither
    are not browsers, and carry no cookie unless they set it themselves.
    """
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        if fetch_site in ("same-origin", "none"):
            return None
        return f"it came from a page of another origin (Sec-Fetch-Site: {fetch_site})"
    origin = request.headers.get("origin")
    if origin is None:
        return None
    own = f"{request.url.scheme}://{request.headers.get('host', '')}"
    if origin != own:
        return f"it came from a page at {origin[:100]}, not {own}"
    return None


def csrf_problem(request: Request, expected: str, submitted: str | None) -> str | None:
    """Why a state-changing request authenticated by a cookie must be refused, or
    ``None`` when it carries the expected token and comes from this origin."""
    foreign = cross_site(request)
    if foreign:
        return f"The request was refused: {foreign}."
    if not (expected and submitted) or not hmac.compare_digest(
        submitted.encode(), expected.encode()
    ):
        return (
            "The request was refused: it does not carry this session's CSRF token. Reload "
            f"the page and try again (scripts send the token in the {CSRF_HEADER} header)."
        )
    return None
