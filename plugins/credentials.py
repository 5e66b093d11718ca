"""Builtin plugin credentials (not built yet)."""
