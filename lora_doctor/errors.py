"""The error every command raises for a mistake in how it was called. A module of its own, so the
commands need not import the cli module that imports them."""

from __future__ import annotations


class UsageError(Exception):
    """A mistake in how the user called us: printed as one line, exit code 2."""
