"""The ``mlzen`` command line: one module per command group, each loaded on first use.

``main.py`` holds the lazy top-level group and the error handling; ``output.py`` the
shared rendering (tables for people, ``--json`` for scripts).
"""
