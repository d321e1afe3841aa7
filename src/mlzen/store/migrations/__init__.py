"""Alembic migrations of the metadata store (run by ``metadata.MetadataStore``)."""
