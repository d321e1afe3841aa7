"""Collects the examples of README.md and docs/ as tests (see tests/docs_examples.py)."""

from tests.docs_examples import pytest_collect_file as pytest_collect_file
