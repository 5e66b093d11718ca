"""Print a training command with some script options changed: the exact corrected command."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

from lora_doctor.launch.command import Launch
from lora_doctor.launch.options_table import load_options


def with_options(launch: Launch, changes: list[tuple[str, object]], remove: tuple[str, ...] = ()) -> list[str]:
    """`launch.argv` with each (option, value) set (True = a flag) and `remove` options dropped.

    A changed option keeps its place and its `--name=value` or `--name value` spelling; one the
    command does not have is appended."""
    table = load_options()
    values = dict(changes)
    drop = set(values) | set(remove)
    head = launch.argv[:len(launch.argv) - len(launch.script_args)]
    args, i, done = [], 0, set()
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
            if name in values and name not in done:
                done.add(name)
                args += _spelled(name, values[name], equals="=" in tok)
            continue
        args.append(tok)
        i += 1
    for name, value in changes:
        if name not in done:
            args += _spelled(name, value, equals=False)
    return head + args


def _spelled(name: str, value: object, equals: bool) -> list[str]:
    if value is True:
        return [f"--{name}"]
    if value in (None, False):
        return []
    return [f"--{name}={value}"] if equals else [f"--{name}", str(value)]


def quote(arg: str, platform: str | None = None) -> str:
    """One word the user's shell reads back as `arg`: cmd.exe/PowerShell quoting on Windows, POSIX elsewhere."""
    if platform != "win32":
        return shlex.quote(arg)
    word = subprocess.list2cmdline([arg])
    # cmd.exe reads < > | & ^ outside quotes as redirections and pipes ('pip install transformers<5').
    return f'"{word}"' if any(c in "<>|&^" for c in arg) and not word.startswith('"') else word


def join(argv: list[str], platform: str | None = None) -> str:
    """A command line the user's shell takes back: cmd.exe quoting on Windows, POSIX elsewhere."""
    return " ".join(quote(arg, platform) for arg in argv)


def corrected(ctx, changes: list[tuple[str, object]] = (), remove: tuple[str, ...] = (),
              script: str | None = None, platform: str | None = None) -> str:
    """The context's training command with the edits, secrets redacted, quoted for the target's
    shell; '' when there is no command with a script."""
    from lora_doctor.redact import redact_argv

    launch = ctx.launch
    if launch is None or not launch.script:
        return ""
    argv = with_options(launch, list(changes), remove)
    if script:
        at = len(launch.argv) - len(launch.script_args) - 1
        argv[at] = str(Path(launch.script).with_name(script))
    return join(redact_argv(argv), platform or sys.platform)
