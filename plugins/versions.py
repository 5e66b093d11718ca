"""Builtin plugin versions (not built yet)."""
