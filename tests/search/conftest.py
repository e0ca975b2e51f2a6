"""Fixtures of the search tests: a real PostgreSQL server (postgres_fixture.py)."""

from postgres_fixture import postgres  # noqa: F401
