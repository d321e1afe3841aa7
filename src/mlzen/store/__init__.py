"""The metadata store: runs, step runs, artifacts and their lineage, in SQL.

``tables`` defines the schema, ``metadata`` owns engines, sessions and every write,
``queries`` is the read side, ``migrations/`` keeps the schema in step (Alembic).
"""
