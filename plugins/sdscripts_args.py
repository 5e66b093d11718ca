"""Builtin plugin sdscripts_args (not built yet)."""
