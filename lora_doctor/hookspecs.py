"""The plugin contract: every hook lora-doctor calls, one documented function each.

Builtin plugins (lora_doctor/plugins/) implement exactly these hooks, registered like any
third-party plugin. Import the marker with ``from lora_doctor import hookimpl``.
"""

from __future__ import annotations

from typing import Callable

import pluggy

PROJECT = "lora_doctor"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def lora_doctor_register_checks(register: Callable) -> None:
    """Contribute checks.

    Called once after all plugins are loaded. Call ``register(Check(...))`` for each check
    (see ``lora_doctor.model.Check``). The host, not pluggy, runs the checks: it owns order,
    ``--only``/``--skip``, concurrency, the time budget and isolation, so a raising check
    becomes one finding and every other check still runs.  Since 0.1.
    """


@hookspec
def lora_doctor_register_signatures(register: Callable) -> None:
    """Contribute known-error signatures.

    Call ``register(path)`` with a ``.toml`` file or a folder of them (format:
    known_errors/README.md). A file that fails to load costs only itself.  Since 0.1.
    """


@hookspec
def lora_doctor_diagnose(failure, context) -> list | None:
    """Diagnose a failure with code, where a pattern is not enough.

    ``failure`` is a ``lora_doctor.model.Failure`` (the root failure of the log), or None
    when the log holds no exception (a NaN loss, a process killed without a traceback);
    ``context`` is a ``lora_doctor.diagnose.match.PostMortem`` (the whole parsed log, the parsed
    command and probed facts when known). Return a list of ``Diagnosis`` or None. Called for
    every diagnosis; results are ranked with the signature matches.  Since 0.1.
    """


@hookspec
def lora_doctor_watch_line(line: str, context) -> str | None:
    """Watch the live output of a training run, one line at a time.

    ``line`` is a decoded output line without ANSI codes; ``context`` is the run's Context.
    Return a short hint to show the user (NaN loss, OOM …) or None. Must be fast: it runs
    on every line of output.  Since 0.1.
    """
