"""The team server: a FastAPI app over one metadata store.

``app`` builds it (:func:`mlzen.server.app.create_app`), ``auth`` says who is calling,
``deps`` hands routes the store and a :class:`mlzen.Client`, ``schemas`` are the
responses, ``routes/`` the REST API, ``dashboard/`` the web UI. Nothing here is imported
by ``import mlzen``: FastAPI loads only when a server starts.
"""
