"""``RemoteMetadataStore``: a team server's metadata store, reached over its REST API.

After ``mlzen login URL --api-key KEY`` a project records its runs on the server: the
runtime, the Client and the CLI get a ``RemoteMetadataStore`` where they would get a
``MetadataStore``, and cannot tell the difference. Every store function marked in
:mod:`mlzen.store.operations` goes by name to ``POST <server>/api/v1/store/<operation>``
with the API key as ``Authorization: Bearer``; the server runs the same function on its
own store. Artifacts do not pass through the server: they go to the stack's artifact
store, as before.

A call that never reached the server (connection refused, a restart) is resent for a few
seconds; one whose connection broke after it was sent is resent only when it is
idempotent. Then it fails with a :class:`StoreError` naming the server.

The store's ``url`` carries the key as the URL's password
(``http://apikey:<key>@host:8237``), as an SQL store's URL carries the database
password: worker processes and Ray tasks rebuild the store from it. Like any store URL
it is only ever shown through ``safe_url``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from mlzen import errors
from mlzen.errors import ConfigError, StoreError
from mlzen.store.metadata import MetadataStore
from mlzen.store.operations import Operation, decode, encode

if TYPE_CHECKING:
    import httpx
    from sqlalchemy import Connection

SERVER_SCHEMES = ("http://", "https://")
STORE_PATH = "/api/v1/store"
ME_PATH = "/api/v1/auth/me"
KEY_USER = "apikey"
TIMEOUT = 60.0
CONNECT_TIMEOUT = 5.0
KEEPALIVE_SECONDS = 2.0
# About 4 seconds of resending a call that could not connect: rides out a restart.
RETRY_DELAYS = (0.25, 0.5, 1.0, 2.0)
_clients: dict[tuple[str, str, float], httpx.Client] = {}
_clients_lock = threading.Lock()


def is_server_url(url: str) -> bool:
    """Whether ``url`` names an mlzen server rather than a database."""
    return url.startswith(SERVER_SCHEMES)


def split_key(url: str) -> tuple[str, str | None]:
    """``(server URL without credentials, API key or None)`` of a server store URL."""
    parts = urlsplit(url)
    key = unquote(parts.password) if parts.password else None
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), key


def url_with_key(server_url: str, api_key: str) -> str:
    """The store URL of ``server_url`` carrying ``api_key`` (see the module docstring)."""
    server, _ = split_key(server_url)
    parts = urlsplit(server)
    netloc = f"{KEY_USER}:{quote(api_key, safe='')}@{parts.netloc}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def check_server_url(url: str) -> str:
    """``url`` without a trailing slash, if it is an http(s) URL with a host.

    Raises:
        ConfigError: it is not one.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"'{url}' is not an mlzen server URL. Give it as http://host:port (e.g. "
            "http://127.0.0.1:8237, the address 'mlzen server up' prints).",
            server_url=url,
        )
    if parts.password or parts.username or parts.query or parts.fragment:
        raise ConfigError(
            "Give the server URL without credentials, query or fragment, and the key with "
            "--api-key (or MLZEN_API_KEY).",
            server_url=split_key(url)[0],
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ConfigError(
            f"'{url}' has a port that is not a number. Give it as http://host:port.",
            server_url=url,
        ) from None
    return split_key(url)[0]


def close_connections() -> None:
    """Close every pooled connection to a server (tests, and before a process forks)."""
    with _clients_lock:
        for client in _clients.values():
            client.close()
        _clients.clear()


def _caller() -> str:
    """The function that asked for a database connection, for the error message."""
    frame = sys._getframe(1)
    while frame is not None and (
        frame.f_globals.get("__name__") in (__name__, "contextlib")
        or frame.f_code.co_name.startswith(("_", "<"))  # private helpers, comprehensions
    ):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return "This operation"
    return f"'{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_name}'"


class RemoteMetadataStore(MetadataStore):
    """The metadata store of an mlzen server, used through its REST API.

    Args:
        url: the server's URL (``http://host:port``), optionally carrying the API key as
            its password (as :attr:`url` does).
        api_key: the API key, when ``url`` does not carry it.
        timeout: seconds to wait for an answer to one call.
        retry_delays: the pauses between resending a call that could not be sent.

    Attributes:
        server_url: the server's URL without the key, for messages.
        url: the URL that rebuilds this store, key included (never shown).
    """

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = TIMEOUT,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        server_url, key_in_url = split_key(url)
        key = api_key or key_in_url
        self.server_url = server_url
        if not key:
            raise ConfigError(
                f"No API key for the mlzen server at {server_url}. Log in with 'mlzen login "
                f"{server_url} --api-key KEY', or set MLZEN_API_KEY.",
                server_url=server_url,
            )
        self.url = url_with_key(server_url, key)
        self._api_key = key
        self._timeout = timeout
        self._retry_delays = tuple(retry_delays)
        self._named_ids: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:
        return f"<RemoteMetadataStore {self.server_url}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.url,), {"_timeout": self._timeout})

    # -- what a server store cannot do --------------------------------------------------

    def _no_connection(self) -> NoReturn:
        raise StoreError(
            f"{_caller()} needs a direct connection to the database, which a project "
            f"logged in to the mlzen server at {self.server_url} does not have: the server "
            "runs only the store operations marked in mlzen.store.operations. Run 'mlzen "
            "logout' to use this project's own store (in mlzen's code: mark the function "
            "with @remote_read or @remote_write).",
            store_url=self.server_url,
        )

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        self._no_connection()
        yield  # type: ignore[unreachable]

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        self._no_connection()
        yield  # type: ignore[unreachable]

    def ensure_schema(self) -> None:
        """Nothing to do: the server migrates its own store."""

    # -- calls --------------------------------------------------------------------------

    def remote_call(
        self, operation: Operation, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        """Run ``operation`` on the server with these arguments; return its result."""
        arguments = operation.arguments(args, kwargs)
        response = self._send(
            "POST",
            f"{STORE_PATH}/{operation.name}",
            json={"arguments": encode(arguments)},
            what=f"'{operation.name}'",
            idempotent=operation.idempotent,
        )
        if response.status_code != 200:
            self._raise_for(response, f"'{operation.name}'")
        try:
            return decode(response.json()["result"])
        except (ValueError, KeyError, TypeError):
            raise StoreError(
                f"{self.server_url} answered '{operation.name}' with something that is not "
                "an mlzen store result. Check the URL: it should be the address of 'mlzen "
                "server up'.",
                store_url=self.server_url,
            ) from None

    def whoami(self) -> dict[str, Any]:
        """The user this store's API key belongs to (``id``, ``name``, ``role``).

        Raises:
            StoreError: the server cannot be reached or rejects the key.
        """
        response = self._send("GET", ME_PATH, json=None, what="the API key", idempotent=True)
        if response.status_code != 200:
            self._raise_for(response, "the API key")
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not {"name", "role"} <= set(body):
            raise StoreError(
                f"{self.server_url} answered {ME_PATH} with something that is not an mlzen "
                "user. Check the URL: it should be the address of 'mlzen server up'.",
                store_url=self.server_url,
            )
        return body

    def _client(self) -> httpx.Client:
        # One connection pool per server, key and process, shared by every store object
        # (a Client, a run and its heartbeat each make one), like SQL engines.
        cache_key = (self.server_url, self._api_key, self._timeout)
        with _clients_lock:
            client = _clients.get(cache_key)
            if client is None:
                import httpx

                from mlzen import __version__

                client = httpx.Client(
                    base_url=self.server_url,
                    headers={
                        "Authorization": f"Bearer {self._api_key}",
                        "User-Agent": f"mlzen/{__version__}",
                    },
                    timeout=httpx.Timeout(self._timeout, connect=CONNECT_TIMEOUT),
                    # Drop idle connections before the server does (uvicorn: after 5 s),
                    # so a write is never sent on a connection the server is closing.
                    limits=httpx.Limits(keepalive_expiry=KEEPALIVE_SECONDS),
                )
                _clients[cache_key] = client
            return client

    def _send(
        self, method: str, path: str, *, json: Any, what: str, idempotent: bool
    ) -> httpx.Response:
        import httpx

        client = self._client()
        delays = iter(self._retry_delays)
        while True:
            try:
                response = client.request(method, path, json=json)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                # The request never left: resending it is always safe.
                delay = next(delays, None)
                if delay is None:
                    raise StoreError(
                        f"Cannot reach the mlzen server at {self.server_url} "
                        f"({type(exc).__name__}: {exc}). Start it ('mlzen server up') or "
                        "check the URL; 'mlzen logout' makes this project record to its own "
                        "store again.",
                        store_url=self.server_url,
                    ) from exc
            except httpx.TransportError as exc:
                delay = next(delays, None) if idempotent else None
                if delay is None:
                    raise StoreError(
                        f"The mlzen server at {self.server_url} stopped answering while "
                        f"recording {what} ({type(exc).__name__}: {exc or 'no answer'}). "
                        "Check that it is running.",
                        store_url=self.server_url,
                    ) from exc
            else:
                if response.status_code in (502, 503, 504) and idempotent:
                    delay = next(delays, None)
                    if delay is not None:
                        time.sleep(delay)
                        continue
                return response
            time.sleep(delay)

    def _raise_for(self, response: httpx.Response, what: str) -> NoReturn:
        try:
            body = response.json()
        except ValueError:
            body = None
        body = body if isinstance(body, dict) else {}
        name = body.get("error") if isinstance(body.get("error"), str) else None
        detail = str(body.get("detail") or response.text[:300] or response.reason_phrase)
        fields: dict[str, Any] = body["fields"] if isinstance(body.get("fields"), dict) else {}
        server = self.server_url
        status = response.status_code
        if response.is_redirect:
            target = split_key(response.headers.get("location", "?"))[0]
            raise StoreError(
                f"The server at {server} redirects {what} to {target}. Log in with the "
                "address it redirects to: 'mlzen login URL --api-key KEY'.",
                store_url=server,
            )
        if status == 401:
            raise StoreError(
                f"The mlzen server at {server} does not accept this project's API key "
                f"({detail}). Log in again with 'mlzen login {server} --api-key KEY'.",
                store_url=server,
            )
        if status == 403:
            raise StoreError(
                f"The mlzen server at {server} refused {what}: {detail}",
                store_url=server,
            )
        if status == 409 and name == "IntegrityError":
            from sqlalchemy.exc import IntegrityError

            # The SQL store's contract: a unique name already taken raises IntegrityError.
            raise IntegrityError(what, None, Exception(detail))
        error_class = getattr(errors, name, None) if name else None
        if (
            isinstance(error_class, type)
            and issubclass(error_class, errors.MlzenError)
            and error_class is not StoreError
        ):
            raise error_class(detail, **fields)
        if status == 404:  # not an mlzen error: a route this server does not have
            raise StoreError(
                f"The server at {server} does not serve {what} ({status}: {detail}). Is it an "
                "mlzen server of the same version as this client? Check the URL.",
                store_url=server,
            )
        raise StoreError(
            f"The mlzen server at {server} failed {what} ({status}): {detail}",
            store_url=server,
        )
