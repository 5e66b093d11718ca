"""Builtin plugin model_format (not built yet)."""
