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
    from lora_doctor.context import resolve_python_option

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
                   help="the interpreter that will run training: a path, or a venv folder "
                        "(default: the one behind the command, an sd-scripts venv, or this one)")
    p.add_argument("--sd-scripts", metavar="DIR", type=folder,
                   help="the sd-scripts checkout (default: the script's folder, or this folder)")
    p.add_argument("--model", metavar="M", help="the base model: a file, a diffusers folder or a repo id")
    p.add_argument("--offline", action="store_true", help="no network calls (also HF_HUB_OFFLINE=1)")
    p.add_argument("--json", action="store_true", help="print one JSON object (documented in docs/json.md)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the facts behind each line")
    p.add_argument("--only", nargs="+", default=[], metavar="ID",
                   help="run only these checks: ids or families, e.g. gpu hf.token (see `lora-doctor plugins`)")
    p.add_argument("--skip", nargs="+", default=[], metavar="ID", help="skip these checks (ids or families)")
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


def validate_selection(checks, only, skip) -> None:
    """An --only that matches no check is a usage error (it would run nothing and say all is well);
    an unknown --skip is a warning."""
    import difflib

    ids = sorted({c.id for c in checks})
    names = sorted(set(ids) | {i.split(".")[0] for i in ids})

    def unknown(patterns):
        return [p for p in patterns if not any(i == p or i.startswith(p + ".") for i in ids)]

    for pattern in unknown(skip):
        print(f"lora-doctor: warning: --skip {pattern}: no check has that id (see `lora-doctor plugins`)",
              file=sys.stderr)
    bad = unknown(only)
    if not bad:
        return
    if bad[0] in (*LAUNCHERS, "launch") or bad[0].endswith(".py"):
        raise UsageError(f"--only {' '.join(bad)}: put '--' before the training command "
                         "(lora-doctor env --only gpu -- accelerate launch …)")
    close = difflib.get_close_matches(bad[0], names, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]}?" if close else "the families are: " + ", ".join(
        sorted({i.split(".")[0] for i in ids}))
    raise UsageError(f"--only {bad[0]}: no check has that id or family; {hint}")


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
    host, checks, broken = load_checks(args.plugin_dir)
    validate_selection(checks, args.only, args.skip)
    if prepare is not None and not ctx.facts.ready:
        prepare()
    results = broken + run_checks(select(checks, args.only, args.skip), ctx)
    return ctx, results, summary(results), host
