"""Builtin plugins: each module implements hooks of lora_doctor.hookspecs like any third-party plugin."""
