"""Fixtures of the bad_input tests; their helpers live in bad_input_helpers.py, a module
name no other test folder uses."""

from bad_input_helpers import *  # noqa: F403
