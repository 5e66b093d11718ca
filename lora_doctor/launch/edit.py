"""The one editor of training commands: the user's command with some options changed, printed as
the exact corrected command — and every finding's edits composed into one command.

Quoting rule (one for the whole program): a corrected command is pasted into the shell of the
machine lora-doctor runs on, so it is quoted for that machine's shell — `sys.platform == "win32"`:
cmd.exe/PowerShell (the CreateProcess rules of `subprocess.list2cmdline`, plus quotes around
`< > | & ^`), anything else: POSIX sh (`shlex.quote`). The target interpreter is probed on this
same machine, and a log pasted from another machine is fixed by the user here, so neither `os.name`
nor the target's platform is consulted. The `platform` arguments exist for tests (and for text
that is printed for another machine on purpose).

A corrected command is a `Corrected`: a `str` (what every Finding/Diagnosis stores and prints)
that also carries the `Edit` that produced it and the command it edits, so `combined` can apply
the edits of every finding at once.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from dataclasses import dataclass, replace
from typing import Iterable

from lora_doctor.launch.command import Launch
from lora_doctor.launch.options_table import load_options


@dataclass(frozen=True)
class Edit:
    """What to change in a command.

    `set`: (option without "--", value) pairs — True adds a flag, None/False drops the option;
    `remove`: options dropped with their values; `script`: another script file name in the same
    folder; `tokens`: (i, new tokens) replacing `script_args[i]` as written (an empty tuple deletes
    it) — for typos, abbreviations and split values that are not options yet. `equals`: options
    the command does not have yet are appended as `--name=value` (else `--name value`).
    """

    set: tuple[tuple[str, object], ...] = ()
    remove: tuple[str, ...] = ()
    script: str | None = None
    tokens: tuple[tuple[int, tuple[str, ...]], ...] = ()
    equals: bool = False

    def __bool__(self) -> bool:
        return bool(self.set or self.remove or self.script or self.tokens)


class Corrected(str):
    """A corrected training command as text, with the Edit and the Launch it came from."""

    edit: Edit
    launch: Launch | None

    def __new__(cls, text: str, edit: Edit | None = None, launch: Launch | None = None):
        obj = super().__new__(cls, text)
        obj.edit = edit or Edit()
        obj.launch = launch
        return obj


def shell_platform() -> str:
    """The platform whose shell a printed command is quoted for: this machine's (see the module doc)."""
    return sys.platform


def with_options(launch: Launch, changes: list[tuple[str, object]], remove: tuple[str, ...] = (),
                 equals: bool | set[str] = False) -> list[str]:
    """`launch.argv` with each (option, value) set (True = a flag) and `remove` options dropped.

    A changed option keeps its place and its `--name=value` or `--name value` spelling (also when it
    is written as an abbreviation argparse expands); one the command does not have is appended,
    as `--name=value` when `equals` is True or holds its name."""
    table = load_options()
    values = dict(changes)
    drop = set(values) | set(remove)
    head = launch.argv[:len(launch.argv) - len(launch.script_args)]
    abbreviations = getattr(launch, "abbreviations", None) or {}
    args, i, done = [], 0, set()
    rest = launch.script_args
    while i < len(rest):
        tok = rest[i]
        name = tok[2:].split("=", 1)[0] if tok.startswith("--") else None
        name = abbreviations.get(name, name)
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
            done.add(name)
            args += _spelled(name, value, equals=equals if isinstance(equals, bool) else name in equals)
    return head + args


def _spelled(name: str, value: object, equals: bool) -> list[str]:
    if value is True:
        return [f"--{name}"]
    if value in (None, False):
        return []
    return [f"--{name}={value}"] if equals else [f"--{name}", str(value)]


def apply(launch: Launch, edit: Edit, equals: set[str] | None = None) -> list[str]:
    """The command's argv with the edit applied (secrets not yet redacted)."""
    args = list(launch.script_args)
    for i, new in sorted(edit.tokens, reverse=True):
        if 0 <= i < len(args):
            args[i:i + 1] = list(new)
    head = launch.argv[:len(launch.argv) - len(launch.script_args)]
    edited = replace(launch, argv=head + args, script_args=args,
                     abbreviations={} if edit.tokens else dict(getattr(launch, "abbreviations", {}) or {}))
    argv = with_options(edited, list(edit.set), tuple(edit.remove),
                        equals if equals is not None else edit.equals)
    if edit.script and launch.script:
        at = len(head) - 1
        if 0 <= at < len(argv) and argv[at] == launch.script:
            cut = max(launch.script.rfind("/"), launch.script.rfind("\\")) + 1
            argv[at] = launch.script[:cut] + edit.script
    return argv


def quote(arg: str, platform: str | None = None) -> str:
    """One word the user's shell reads back as `arg`: cmd.exe/PowerShell quoting on Windows, POSIX elsewhere."""
    if (platform or shell_platform()) != "win32":
        return shlex.quote(arg)
    word = subprocess.list2cmdline([arg])
    # cmd.exe reads < > | & ^ outside quotes as redirections and pipes ('pip install transformers<5').
    return f'"{word}"' if any(c in "<>|&^" for c in arg) and not word.startswith('"') else word


def join(argv: list[str], platform: str | None = None) -> str:
    """A command line the user's shell takes back: cmd.exe quoting on Windows, POSIX elsewhere."""
    return " ".join(quote(arg, platform) for arg in argv)


def render(launch: Launch, edit: Edit, platform: str | None = None, equals: set[str] | None = None) -> Corrected:
    """The edited command, secrets redacted, quoted for the user's shell."""
    from lora_doctor.redact import redact_argv

    return Corrected(join(redact_argv(apply(launch, edit, equals)), platform), edit, launch)


def corrected(source, changes: Iterable[tuple[str, object]] = (), remove: Iterable[str] = (),
              script: str | None = None, platform: str | None = None, *,
              tokens: dict[int, list[str]] | None = None, equals: bool = False) -> str:
    """The training command of `source` (a Context, a post-mortem context or a Launch) with the
    edits, secrets redacted, quoted for the user's shell; '' when there is no command with a script.

    Every corrected command in lora-doctor comes from here."""
    launch = source if isinstance(source, Launch) else getattr(source, "launch", None)
    if launch is None or not getattr(launch, "script", None):
        return ""
    edit = Edit(tuple(changes), tuple(remove), script,
                tuple(sorted((i, tuple(new)) for i, new in (tokens or {}).items())), equals)
    return render(launch, edit, platform)


def _token_names(launch: Launch, i: int, new: tuple[str, ...]) -> set[str]:
    """Option names a token edit touches (the one it replaces, the ones it writes)."""
    old = launch.script_args[i] if 0 <= i < len(launch.script_args) else ""
    return {t[2:].split("=", 1)[0] for t in (old, *new) if t.startswith("--")}


def compose(launch: Launch, edits: Iterable[Edit], platform: str | None = None) -> str:
    """One command applying every edit; on a conflict (the same option, token or script) the
    earlier edit wins. '' when nothing is left to change."""
    taken: set[str] = set()
    sets: list[tuple[str, object]] = []
    removes: list[str] = []
    tokens: dict[int, tuple[str, ...]] = {}
    equals: set[str] = set()
    script = None
    for edit in edits:
        for i, new in edit.tokens:
            names = _token_names(launch, i, new)
            if i in tokens or names & taken:
                continue
            tokens[i] = new
            taken |= names
        for name, value in edit.set:
            if name not in taken:
                taken.add(name)
                sets.append((name, value))
                if edit.equals:
                    equals.add(name)
        for name in edit.remove:
            if name not in taken:
                taken.add(name)
                removes.append(name)
        script = script or edit.script
    merged = Edit(tuple(sets), tuple(removes), script, tuple(sorted(tokens.items())))
    return render(launch, merged, platform, equals) if merged else ""


def combined(findings, minimum: int = 2, platform: str | None = None) -> str:
    """One corrected training command with the edits of every finding's corrected command, the
    most severe first; '' when fewer than `minimum` findings edit the command."""
    ordered = sorted(findings, key=lambda f: -int(getattr(f, "severity", 0)))
    fixes = [f.fix_command for f in ordered if isinstance(getattr(f, "fix_command", None), Corrected)
             and f.fix_command.edit and f.fix_command.launch is not None]
    if not fixes:
        return ""
    launch = fixes[0].launch
    edits = [c.edit for c in fixes if c.launch is launch or c.launch.argv == launch.argv]
    if len({repr(e) for e in edits}) < minimum:
        return ""
    return compose(launch, edits, platform)
