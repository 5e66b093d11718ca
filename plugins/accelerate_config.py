"""Builtin plugin accelerate_config (not built yet)."""
