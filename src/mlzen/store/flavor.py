"""``metadata_store.sql``: a metadata store at any SQLAlchemy URL.

SQLite (``sqlite:////abs/path/mlzen.db``; a relative path is relative to the project
root), PostgreSQL (``postgresql+psycopg://user@host/db``) or MySQL. Put the password in a
secret and reference it: ``postgresql+psycopg://mlzen:{{ secrets.pg.password }}@db/mlzen``.
The password may also be given apart, as ``password`` (e.g. ``--password '{{
secrets.pg.password }}'``): it may then hold characters a URL would need escaped. The URL
is never shown with its password.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from mlzen.flavors import Flavor, MetadataStoreComponent


class SqlMetadataStoreConfig(BaseModel):
    """``url``: an SQLAlchemy URL; ``password``: the database password, if not in it."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    url: str = Field(repr=False)
    password: str | None = Field(None, repr=False)

    @field_validator("url")
    @classmethod
    def _sqlalchemy_url(cls, value: str, info: ValidationInfo) -> str:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError

        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            # The reason would quote the URL, password included.
            raise ValueError(
                "it is not an SQLAlchemy URL such as sqlite:////path/mlzen.db or "
                "postgresql+psycopg://user@host/db"
            ) from None
        try:
            url.get_dialect()
        except NoSuchModuleError:
            raise ValueError(
                f"SQLAlchemy has no database dialect '{url.drivername}'; use e.g. sqlite, "
                "postgresql+psycopg or mysql+pymysql"
            ) from None
        database = url.database
        root = (info.context or {}).get("project_root")
        if (
            url.get_backend_name() == "sqlite"
            and database
            and database != ":memory:"
            and not database.startswith("file:")
            and not os.path.isabs(database)
            and root
        ):
            absolute = os.path.abspath(os.path.join(root, os.path.expanduser(database)))
            return url.set(database=absolute).render_as_string(hide_password=False)
        return value


class SqlMetadataStoreFlavor(Flavor):
    """``metadata_store.sql``: runs recorded at ``url``."""

    kind = "metadata_store"
    name = "sql"
    config_class = SqlMetadataStoreConfig

    def build(self, config: Any) -> MetadataStoreComponent:
        if config.password is None:
            return MetadataStoreComponent(config.url)
        from sqlalchemy.engine import make_url

        url = make_url(config.url).set(password=config.password)
        return MetadataStoreComponent(url.render_as_string(hide_password=False))
