"""Options and steps shared by the commands that run checks (env, run, dataset)."""

from __future__ import annotations

import argparse
import os
import sys

from ..cli import UsageError


def add_plugin_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--plugin-dir", action="append", default=[], metavar="DIR",
                   help="also load plugins (.py) and signatures (.toml) from DIR (repeatable)")


def add_check_options(p: argparse.ArgumentParser) -> None:
    """The options of `lora-doctor env`, shared with `lora-doctor run`."""
    p.add_argument("--python", metavar="PATH", help="the interpreter that will run training "
                   "(default: the one behind the command, an sd-scripts venv, or this one)")
    p.add_argument("--sd-scripts", metavar="DIR", help="the sd-scripts checkout (default: the script's folder)")
    p.add_argument("--model", metavar="M", help="the base model: a file, a diffusers folder or a repo id")
    p.add_argument("--offline", action="store_true", help="no network calls (also HF_HUB_OFFLINE=1)")
    p.add_argument("--json", action="store_true", help="print one JSON object (documented in docs/json.md)")
    p.add_argument("-v", "--verbose", action="store_true", help="show the facts behind each line")
    p.add_argument("--only", nargs="+", default=[], metavar="ID", help="run only these checks (id or family)")
    p.add_argument("--skip", nargs="+", default=[], metavar="ID", help="skip these checks (id or family)")
    p.add_argument("--probe-timeout", type=float, default=60.0, metavar="S", help=argparse.SUPPRESS)
    add_plugin_dir(p)


def parse_launch(command: list[str] | None):
    """The parsed training command, or None; a malformed one is a usage error."""
    if command is None:
        return None
    from ..command import parse_command

    try:
        launch = parse_command(command)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return launch


def validate_check_options(args) -> None:
    """Raise UsageError for a --python / --sd-scripts / --probe-timeout that cannot work (call it
    before anything else, so the user gets exit code 2 and one line)."""
    if args.python:
        from pathlib import Path

        from ..context import resolve_python_option

        if resolve_python_option(args.python, Path.cwd(), os.environ) is None:
            raise UsageError(f"--python {args.python}: no such interpreter (give the path of the python "
                             "that runs training, e.g. sd-scripts/venv/bin/python or venv\\Scripts\\python.exe)")
    if args.sd_scripts and not os.path.isdir(os.path.expanduser(args.sd_scripts)):
        raise UsageError(f"--sd-scripts {args.sd_scripts}: no such folder (give the sd-scripts checkout, "
                         "the folder holding train_network.py)")
    if args.probe_timeout <= 0:
        raise UsageError("--probe-timeout must be a positive number of seconds")


def run_all_checks(args, launch, *, options=None, prepare=None):
    """Build the context, load plugins, run the selected checks: (context, results, summary, host).

    `prepare()` (e.g. importing the renderer) runs while the probe imports torch, off the
    critical path.
    """
    from ..context import build_context
    from ..doctor import plugin_error_results, run_checks, select, summary
    from ..pluginmanager import PluginHost

    validate_check_options(args)
    ctx = build_context(python=args.python, launch=launch, sd_scripts=args.sd_scripts, model=args.model,
                        offline=args.offline, verbose=args.verbose, options=options,
                        probe_timeout=args.probe_timeout)
    host = PluginHost(args.plugin_dir)
    checks, errors = host.checks()
    broken = [(p.name, p.error) for p in host.plugins if p.error] + errors
    known = {c.id for c in checks}
    for pattern in list(args.only) + list(args.skip):
        if not any(i == pattern or i.startswith(pattern + ".") for i in known):
            print(f"lora-doctor: warning: no check matches '{pattern}' (see `lora-doctor plugins`)", file=sys.stderr)
    if prepare is not None and not ctx.facts.ready:
        prepare()
    results = plugin_error_results(broken) + run_checks(select(checks, args.only, args.skip), ctx)
    return ctx, results, summary(results), host
