"""Builtin plugin diagnose_code (not built yet)."""
