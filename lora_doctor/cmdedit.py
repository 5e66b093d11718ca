"""Print a training command with some script options changed: the exact corrected command."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from .command import Launch
from .options_table import load_options


def with_options(launch: Launch, changes: list[tuple[str, object]], remove: tuple[str, ...] = ()) -> list[str]:
    """`launch.argv` with each (option, value) set (True = a flag) and `remove` options dropped."""
    table = load_options()
    drop = {name for name, _ in changes} | set(remove)
    head = launch.argv[:len(launch.argv) - len(launch.script_args)]
    args, i = [], 0
    rest = launch.script_args
    while i < len(rest):
        tok = rest[i]
        name = tok[2:].split("=", 1)[0] if tok.startswith("--") else None
        if name in drop:
            spec = table.get(name)
            takes_value = "=" not in tok and not (spec is not None and spec.is_flag)
            i += 1
            while takes_value and i < len(rest) and not rest[i].startswith("--"):
                i += 1
                if not (spec is not None and spec.is_list):
                    break
            continue
        args.append(tok)
        i += 1
    for name, value in changes:
        if value is True:
            args.append(f"--{name}")
        elif value not in (None, False):
            args += [f"--{name}", str(value)]
    return head + args


def join(argv: list[str], platform: str | None = None) -> str:
    """A command line the user's shell takes back: cmd.exe quoting on Windows, POSIX elsewhere."""
    return subprocess.list2cmdline(argv) if platform == "win32" else shlex.join(argv)


def corrected(ctx, changes: list[tuple[str, object]] = (), remove: tuple[str, ...] = (),
              script: str | None = None, platform: str | None = None) -> str:
    """The context's training command with the edits, secrets redacted, quoted for the target's
    shell; '' when there is no command with a script."""
    from .redact import redact_argv

    launch = ctx.launch
    if launch is None or not launch.script:
        return ""
    argv = with_options(launch, list(changes), remove)
    if script:
        at = len(launch.argv) - len(launch.script_args) - 1
        argv[at] = str(Path(launch.script).with_name(script))
    return join(redact_argv(argv), platform or sys.platform)
