"""The plugin contract: every hook lora-doctor calls, one documented function each.

Builtin plugins (lora_doctor/plugins/) implement exactly these hooks, registered like any
third-party plugin. Import the marker and the types from the package root:
``from lora_doctor import hookimpl, Check, Finding, Severity, Diagnosis``. docs/plugins.md has a
section per hook (a test keeps the two in step).

Every hook runs as plugin code (docs/plugins.md, "What a plugin cannot break"): within a time
budget, its ``print()`` sent to stderr, its failures reported as the plugin's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, Union

import pluggy

if TYPE_CHECKING:  # types only: importing this module stays cheap
    from importlib.resources.abc import Traversable
    from os import PathLike

    from lora_doctor.context import Context
    from lora_doctor.diagnose.match import PostMortem
    from lora_doctor.model import Check, Diagnosis, Failure

    SignaturePath = Union[str, PathLike, Traversable]

PROJECT = "lora_doctor"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def lora_doctor_register_checks(register: Callable[[Check], None]) -> None:
    """Contribute checks.

    Called once per command, after all plugins are loaded. Call ``register(Check(...))`` for
    each check (``lora_doctor.Check``: id ``family.name``, title, ``run(context) ->
    Iterable[Finding]``, ``applies``, ``timeout``). The host, not pluggy, runs the checks: it owns
    order, ``--only``/``--skip``, concurrency, the time budget and isolation, so a raising check
    becomes one warning and every other check still runs. Returns nothing.  Since 0.1.
    """


@hookspec
def lora_doctor_register_signatures(register: Callable[[SignaturePath], None]) -> None:
    """Contribute known-error signatures.

    Called once per command that diagnoses or lists signatures. Call ``register(path)`` with a
    ``.toml`` file or a folder of them (format: known_errors/README.md). A file that fails to
    load costs only itself; a signature that reuses a builtin id is refused. Returns nothing.
    Since 0.1.
    """


@hookspec
def lora_doctor_diagnose(failure: Failure | None, postmortem: PostMortem) -> Iterable[Diagnosis] | None:
    """Diagnose a failure with code, where a pattern is not enough.

    Called once per diagnosis (``lora-doctor diagnose``, and ``run`` after a failed run).
    ``failure`` is a ``lora_doctor.Failure`` (the root failure of the log), or None when the log
    holds no exception (a NaN loss, a process killed without a traceback); ``postmortem`` is a
    ``lora_doctor.PostMortem``: the whole parsed log (``.log``), the parsed command
    (``.launch``, ``.option(name)``), the probed facts when known (``.fact("torch.version")``),
    how the process ended (``.exit``). Return ``Diagnosis`` objects or None; they are ranked with
    the signature matches.  Since 0.1; the argument was named ``context`` before 0.2.
    """


@hookspec
def lora_doctor_watch_line(line: str, context: Context) -> str | None:
    """Watch the live output of a training run, one line at a time.

    Called by ``lora-doctor run`` for each line the training prints, on a worker thread of its
    own (never in the output copy loop; lines are dropped when it falls behind). ``line`` is a
    decoded output line without ANSI codes; ``context`` is the run's ``lora_doctor.Context``
    (the same object a check gets). Return a short hint to show the user (NaN loss, OOM …) or
    None. A call that takes longer than a second, or raises, switches this plugin's watching off
    for the run.  Since 0.1.
    """
