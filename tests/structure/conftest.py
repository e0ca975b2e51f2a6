"""Fixtures of the structure tests; their helpers live in structure_helpers.py, a module
name no other test folder uses."""

from structure_helpers import *  # noqa: F403
