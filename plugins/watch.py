"""Builtin plugin watch (not built yet)."""
