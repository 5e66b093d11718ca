"""Options and steps shared by the commands that run checks (env, run, dataset).

Paths given as options are checked while the command line is parsed, so a bad one is a usage error
(exit code 2, one line) before anything runs, also for `run --force`, which checks in a thread.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from lora_doctor.errors import UsageError
from lora_doctor.launch import LAUNCHERS
from lora_doctor.target.probe import DEFAULT_TIMEOUT as PROBE_TIMEOUT


def plugin_folder(value: str) -> str:
    """argparse type of --plugin-dir: an existing folder."""
    path = Path(os.path.expanduser(value))
    if path.is_dir():
        return value
    if path.exists():
        raise argparse.ArgumentTypeError(f"{value} is a file: give the folder that holds your plugins "
                                         "(.py) and signatures (.toml)")
    raise argparse.ArgumentTypeError(f"no such folder: {value}")


def interpreter(value: str) -> str:
    """argparse type of --python: a path, a name on PATH or a venv folder that holds a runnable python."""
    from lora_doctor.target.find import resolve_python_option

    found = resolve_python_option(value, Path.cwd(), os.environ)
    if found is None:
        base = Path(os.path.expanduser(value))
        for link in (base, base / "bin" / "python", base / "venv" / "bin" / "python", base / ".venv" / "bin" / "python"):
            if link.is_symlink() and not link.exists():
                raise argparse.ArgumentTypeError(
                    f"{link} links to {os.readlink(link)}, which no longer exists: the venv's base Python was "
                    "removed or upgraded; recreate the venv (python3.10 -m venv venv) and reinstall its packages")
        raise argparse.ArgumentTypeError(
            f"no such interpreter: {value} (give the python that runs training, e.g. "
            "sd-scripts/venv/bin/python, venv\\Scripts\\python.exe, or the venv folder)")
    if os.name != "nt" and not os.access(found, os.X_OK):
        raise argparse.ArgumentTypeError(f"{found} is not a program (not executable): give the python "
                                         "interpreter, e.g. sd-scripts/venv/bin/python")
    return value


def folder(value: str) -> str:
    """argparse type of --sd-scripts: an existing folder."""
    if os.path.isdir(os.path.expanduser(value)):
        return value
    raise argparse.ArgumentTypeError(f"no such folder: {value} (give the sd-scripts checkout, the folder "
                                     "holding train_network.py)")


def seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number > 0:
        raise argparse.ArgumentTypeError(f"'{value}' is not a positive number of seconds")
    return number


def add_plugin_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin-dir", action="append", default=[], metavar="DIR", type=plugin_folder,
                   help="also load plugins (.py) and signatures (.toml) from DIR (repeatable)")


def add_check_options(p: argparse.ArgumentParser) -> None:
    """The options of `lora-doctor env`, shared with `lora-doctor run`."""
    p.add_argument("--python", metavar="PATH", type=interpreter,
                   help="the interpreter that will run training: a path, or a venv folder (default: the one "
                        "behind the command, the activated venv, accelerate on PATH, or the venv beside "
                        "sd-scripts / kohya_ss / lora-scripts / LoRA_Easy_Training_Scripts)")
    p.add_argument("--sd-scripts", metavar="DIR", type=folder,
                   help="the sd-scripts checkout (default: the script's folder, this folder, or the "
                        "sd-scripts folder in it)")
    p.add_argument("--model", metavar="M", help="the base model: a file, a diffusers folder or a repo id")
    p.add_argument("--offline", action="store_true",
                   help="lora-doctor makes no network calls; what needs the Hub is 'not checked' (with "
                        "HF_HUB_OFFLINE=1 training is offline too, and an uncached download is an error)")
    p.add_argument("--json", action="store_true", help="print one JSON object (documented in docs/json.md)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the notes and facts behind each line")
    p.add_argument("--only", nargs="+", default=[], metavar="ID",
                   help="run only these checks: ids, families or titles, any case, e.g. gpu auth.token "
                        "tokenizer (see `lora-doctor plugins`)")
    p.add_argument("--skip", nargs="+", default=[], metavar="ID", help="skip these checks (ids, families or titles)")
    p.add_argument("--probe-timeout", type=seconds, default=PROBE_TIMEOUT, metavar="S", help=argparse.SUPPRESS)
    add_plugin_dir(p)


def parse_launch(command: list[str] | None):
    """The parsed training command, or None; a malformed one is a usage error."""
    if command is None:
        return None
    from lora_doctor.launch.command import parse_command

    try:
        launch = parse_command(command)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return launch


def load_checks(plugin_dir):
    """(host, every registered check, []): a broken plugin is a check `plugin.<name>` that warns,
    so --only/--skip select it like any other (the third item is kept for callers)."""
    from lora_doctor.host.doctor import plugin_error_checks
    from lora_doctor.host.pluginmanager import PluginHost

    host = PluginHost(plugin_dir)
    checks, errors = host.checks()
    broken = [(p.name, p.error) for p in host.plugins if p.error] + errors
    return host, plugin_error_checks(broken) + checks, []


# Family names people use for a check family of another name (`--only hf.token`).
FAMILY_ALIASES = {"hf": "auth", "huggingface": "auth"}


def _plain(text: str) -> str:
    """A title or pattern compared without case, spaces or punctuation ('Hugging Face token')."""
    return "".join(ch for ch in text.lower() if ch.isalnum())


def matching_ids(checks, pattern: str) -> set[str]:
    """The ids of the checks `pattern` names, case-insensitively: an id, an id prefix (a family such as
    `gpu`, or `auth.tok`), the name after the dot (`tokenizer`), or a title (`"Hugging Face token"`)."""
    p = pattern.strip().lower()
    if not p:
        return set()
    family, dot, rest = p.partition(".")
    spellings = {p} | ({FAMILY_ALIASES[family] + dot + rest} if family in FAMILY_ALIASES else set())
    found = set()
    for c in checks:
        cid = c.id.lower()
        if any(cid.startswith(s) or cid.partition(".")[2] == s for s in spellings) \
                or (_plain(c.title) and _plain(c.title) == _plain(p)):
            found.add(c.id)
    return found


def resolve_selection(checks, only, skip) -> tuple[list[str], list[str]]:
    """--only/--skip as the exact ids they name (for `select`); raises UsageError for an --only that names
    no check (it would run nothing and say all is well); an unknown --skip is a warning."""
    import difflib

    ids = sorted({c.id for c in checks})
    names = sorted(set(ids) | {i.split(".")[0] for i in ids} | {c.title.lower() for c in checks})
    for pattern in skip:
        if not matching_ids(checks, pattern):
            print(f"lora-doctor: warning: --skip {pattern}: no check has that id or title (see `lora-doctor plugins`)",
                  file=sys.stderr)
    bad = [p for p in only if not matching_ids(checks, p)]
    if bad:
        if bad[0] in (*LAUNCHERS, "launch") or bad[0].endswith(".py"):
            raise UsageError(f"--only {' '.join(bad)}: put '--' before the training command "
                             "(lora-doctor env --only gpu -- accelerate launch …)")
        close = difflib.get_close_matches(bad[0].lower(), names, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]}?" if close else "the families are: " + ", ".join(
            sorted({i.split(".")[0] for i in ids}))
        raise UsageError(f"--only {bad[0]}: no check has that id, family or title; {hint}")
    chosen = sorted(set().union(*(matching_ids(checks, p) for p in only))) if only else []
    skipped = sorted(set().union(*(matching_ids(checks, p) for p in skip))) if skip else []
    return chosen, skipped


def validate_selection(checks, only, skip) -> None:
    """resolve_selection, for its errors and warnings only."""
    resolve_selection(checks, only, skip)


class Progress:
    """`checking /path/python (import torch)… 3 s` on stderr while the probe runs, when stderr is a
    terminal and the checks run in the main thread (`run --force` checks while the training writes to
    the terminal: no progress line there); the line is cleared before anything else is printed."""

    DELAY = 0.3  # a probe that answers quicker shows nothing

    def __init__(self, ctx, stream=None):
        import threading

        self.ctx = ctx
        self.stream = stream or sys.stderr
        self.shown = 0  # the width of the progress line on screen
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.thread = None
        if (getattr(self.stream, "isatty", lambda: False)() and not ctx.facts.ready
                and threading.current_thread() is threading.main_thread()):
            self.thread = threading.Thread(target=self._run, daemon=True, name="progress")
            self.thread.start()

    def _run(self) -> None:
        import time

        started = time.monotonic()
        if self.ctx.facts.wait(self.DELAY) or self.stopped.is_set():
            return
        while not self.stopped.is_set() and not self.ctx.facts.ready:
            text = f"lora-doctor: checking {self.ctx.python} (import torch)… {time.monotonic() - started:.0f} s"
            with self.lock:
                if self.stopped.is_set():
                    return
                self._write("\r" + text.ljust(self.shown))  # spaces, not an escape: any console, NO_COLOR
                self.shown = max(self.shown, len(text))
            self.ctx.facts.wait(1.0)
        self.stop()

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass

    def stop(self) -> None:
        with self.lock:
            self.stopped.set()
            if self.shown:
                self._write("\r" + " " * self.shown + "\r")
                self.shown = 0


NONE_FOUND_REASON = "no training Python found; --python PATH"


def none_found_results(results) -> list:
    """No training Python was found, so the probe ran in lora-doctor's own environment. A check whose
    fix would install or change packages there (or names that interpreter) describes lora-doctor's
    environment, not the training's: it becomes skipped, for that reason. Fixing its findings would fix
    nothing for training; the Python check already says to point lora-doctor at the training Python."""
    from dataclasses import replace

    own = (sys.executable, sys.prefix)
    out = []
    for result in results:
        texts = [f"{f.summary}\n{f.fix}\n{f.fix_command}" for f in result.findings
                 if not f.check_id.startswith("python.interpreter")]
        if any("pip " in t or "pip.exe" in t or any(p and p in t for p in own) for t in texts):
            result = replace(result, status="skipped", findings=[], skipped_reason=NONE_FOUND_REASON)
        out.append(result)
    return out


def run_all_checks(args, launch, *, options=None, prepare=None):
    """Build the context, load plugins, run the selected checks: (context, results, summary, host).

    `prepare()` (e.g. importing the renderer) runs while the probe imports torch, off the
    critical path.
    """
    from lora_doctor.context import build_context
    from lora_doctor.host.doctor import run_checks, select, summary

    ctx = build_context(python=args.python, launch=launch, sd_scripts=args.sd_scripts, model=args.model,
                        offline=args.offline, verbose=args.verbose, options=options,
                        probe_timeout=args.probe_timeout)  # the probe starts now, plugins load meanwhile
    progress = Progress(ctx)
    try:
        host, checks, broken = load_checks(args.plugin_dir)
        only, skip = resolve_selection(checks, args.only, args.skip)
        if prepare is not None and not ctx.facts.ready:
            prepare()
        results = broken + run_checks(select(checks, only, skip), ctx)
    finally:
        progress.stop()
    if not ctx.found_training_python:
        results = none_found_results(results)
    return ctx, results, summary(results), host
