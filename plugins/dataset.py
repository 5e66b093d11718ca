"""Builtin plugin dataset (not built yet)."""
