"""Builtin plugin hf_token (not built yet)."""
