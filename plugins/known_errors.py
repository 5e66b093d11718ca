"""Builtin plugin: registers the shipped known-error database (the known_errors/ TOML files)."""

from __future__ import annotations

from importlib import resources

from lora_doctor.hookspecs import hookimpl


@hookimpl
def lora_doctor_register_signatures(register):
    """The builtin signature folder, shipped inside the package."""
    register(resources.files("lora_doctor.known_errors"))
