"""Builtin plugin gpu (not built yet)."""
