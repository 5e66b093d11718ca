"""`lora-doctor` command line: a thin dispatcher over lora_doctor/commands/*.

Exit codes: 0 ok, 1 a problem was found, 2 usage error (per command: see its --help).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__

# subcommand -> module in lora_doctor.commands (each has add_parser(subparsers) and run(args) -> int)
COMMANDS = ("env", "run", "diagnose", "dataset", "errors", "plugins", "history", "diff")
USAGE_ERROR = 2


class UsageError(Exception):
    """A mistake in how the user called us: printed as one line, exit code 2."""


def split_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Split `lora-doctor env -v -- accelerate launch …` into ours and the training command."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lora-doctor",
        description="Get LoRA training with kohya-ss sd-scripts to work on the first try.")
    parser.add_argument("--version", action="version", version=f"lora-doctor {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"lora_doctor.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["--version"], ["-V"]):  # answered before anything else is imported
        print(f"lora-doctor {__version__}")
        return 0
    ours, command = split_command(argv)
    parser = build_parser()
    args = parser.parse_args(ours)
    args.command = command
    if not getattr(args, "handler", None):
        parser.print_help()
        return USAGE_ERROR
    if command is not None and not getattr(args, "accepts_command", False):
        parser.error(f"'{args.subcommand}' does not take a command after '--'")
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"lora-doctor {args.subcommand}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("lora-doctor: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:
        if os.environ.get("LORA_DOCTOR_DEBUG"):
            raise
        print(f"lora-doctor {args.subcommand}: internal error: {type(exc).__name__}: {exc} "
              "(set LORA_DOCTOR_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
