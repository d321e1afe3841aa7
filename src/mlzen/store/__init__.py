"""The metadata store: runs, step runs, artifacts and their lineage, in SQL.

``tables`` defines the schema, ``metadata`` owns engines, sessions and every write,
``queries`` is the read side, ``migrations/`` keeps the schema in step (Alembic).
``operations`` marks the store functions a team server runs for a logged-in client, and
``remote`` is the store such a client uses.

:func:`runs_store_url` and :func:`open_metadata_store` are the one place that decides
which store a project records its runs in; the stack registry and secrets always stay in
the project's own store (``Settings.store_url``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlzen.config import Settings
    from mlzen.store.metadata import MetadataStore


def runs_store_url(settings: Settings) -> str:
    """Where the project records runs: the server it is logged in to (``mlzen login``,
    ``MLZEN_SERVER_URL``), its key included, else its own store (``store_url``)."""
    if settings.server_url:
        from mlzen.store.remote import RemoteMetadataStore, check_server_url

        server = check_server_url(settings.server_url)
        return RemoteMetadataStore(server, settings.api_key or None).url
    return settings.store_url


def open_metadata_store(url: str) -> MetadataStore:
    """The store at ``url``: a server's (``http(s)://``) or a database (SQLAlchemy URL).

    A server URL without a key takes it from the settings (``MLZEN_API_KEY`` or the
    project's ``mlzen login``).
    """
    if url.startswith(("http://", "https://")):
        from mlzen.store.remote import RemoteMetadataStore, split_key

        if split_key(url)[1] is None:
            from mlzen.config import load_settings

            return RemoteMetadataStore(url, load_settings().api_key or None)
        return RemoteMetadataStore(url)
    from mlzen.store.metadata import MetadataStore

    return MetadataStore(url)
