"""Materializers for the libraries ML teams already use, one module per library.

Each is an optional extra (``mlzen[sklearn]``, ``mlzen[polars]``, ``mlzen[images]``)
registered the way any outside package registers one: an entry point of group
``mlzen.materializers`` in ``pyproject.toml``. Core mlzen never imports this package;
a module here is imported only when a value of its library's type is saved or loaded.
"""
