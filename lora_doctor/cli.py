"""`lora-doctor` command line: a thin dispatcher over lora_doctor/commands/*.

Exit codes: 0 ok, 1 a problem was found, 2 usage error (per command: see its --help).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from lora_doctor import __version__
from lora_doctor.errors import UsageError  # noqa: F401  (lora_doctor.cli.UsageError, as before)
from lora_doctor.launch import LAUNCHERS  # noqa: F401  first words of a training command

# subcommand -> module in lora_doctor.commands (each has add_parser(subparsers) and run(args) -> int)
COMMANDS = ("env", "run", "diagnose", "dataset", "report", "errors", "plugins", "history", "diff")
USAGE_ERROR = 2
TRAIN = "accelerate launch train_network.py --pretrained_model_name_or_path=model.safetensors …"
SHORT = "accelerate launch train_network.py …"

OVERVIEW = f"""\
lora-doctor {__version__}: get LoRA training with kohya-ss sd-scripts to work on the first try.

  lora-doctor env                      check this machine: Python, GPU, packages, token
  lora-doctor env -- {SHORT}
                                       check a training command without launching it
  lora-doctor run -- {SHORT}
                                       check it, launch it, and explain a crash
  lora-doctor diagnose train.log       name the cause of a crash from its log
  lora-doctor dataset DIR --resolution 512
                                       check a training folder before training

Every command: lora-doctor --help. One command's options and examples: lora-doctor env -h
"""

EXAMPLES = {
    "env": f"""lora-doctor env
lora-doctor env --python C:\\sd-scripts\\venv\\Scripts\\python.exe     (Windows; a venv folder works too)
lora-doctor env --only gpu hf --json
lora-doctor env -- {TRAIN}""",
    "run": f"""lora-doctor run -- {TRAIN}
lora-doctor run --check-only -- accelerate launch train_network.py --config_file my_lora.toml
lora-doctor run --log train.log --force -- python train_network.py …""",
    "diagnose": """lora-doctor diagnose train.log
lora-doctor diagnose - < train.log
lora-doctor diagnose train.log --json
lora-doctor diagnose train.log -- accelerate launch train_network.py …   (fixes use that command)""",
    "dataset": """lora-doctor dataset train --resolution 512
lora-doctor dataset "D:\\lora\\train" --resolution 1024 --enable_bucket --script sdxl_train_network.py
lora-doctor dataset --dataset_config dataset.toml""",
    "report": """lora-doctor report --log train.log -- accelerate launch train_network.py …
lora-doctor report --last          (the command and log of the last `lora-doctor run`)
lora-doctor report > report.md""",
    "errors": """lora-doctor errors list
lora-doctor errors show dataset.image_too_large_no_bucket
lora-doctor errors test my_errors.toml""",
    "plugins": """lora-doctor plugins
lora-doctor plugins --plugin-dir my_plugins --json""",
    "history": """lora-doctor history -n 5
lora-doctor history show last
lora-doctor history prune --older-than 90d""",
    "diff": """lora-doctor diff
lora-doctor diff 12
lora-doctor diff last-ok last-failed --json""",
}

# argparse cannot show the training command after `--`
USAGE = {
    "env": "lora-doctor env [options] [-- accelerate launch train_network.py …]",
    "run": "lora-doctor run [options] -- accelerate launch train_network.py …",
    "diagnose": "lora-doctor diagnose [options] LOG|- [-- the training command, for fixes that edit it]",
    "dataset": "lora-doctor dataset [DIR] [options] [sd-scripts' dataset options]",
    "history": "lora-doctor history [--json] [-n N]  |  history show RUN  |  history prune --older-than AGE",
    "errors": "lora-doctor errors list  |  errors show ID  |  errors test [FILE.toml|FOLDER …]",
}

class _Formatter(argparse.HelpFormatter):
    """Descriptions wrapped as usual; the examples epilog kept line by line."""

    def _fill_text(self, text, width, indent):
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (argparse's own prints the whole usage, 30 lines for `dataset`)."""

    def error(self, message):
        self.exit(USAGE_ERROR, f"{self.prog}: error: {message} (see `{self.prog} -h`)\n")


def split_command(argv: list[str]) -> tuple[list[str], list[str] | None]:
    """Split `lora-doctor env -v -- accelerate launch …` into ours and the training command."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, None


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lora-doctor", formatter_class=_Formatter,
                    description="Get LoRA training with kohya-ss sd-scripts to work on the first try.",
                    epilog="examples:\n" + "\n".join("  " + line for line in OVERVIEW.splitlines()[2:-2]))
    parser.add_argument("--version", action="version", version=f"lora-doctor {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    parser.commands = sub.choices  # name -> its parser
    for name in COMMANDS:
        importlib.import_module(f"lora_doctor.commands.{name}").add_parser(sub)
        command = sub.choices[name]
        command.usage = USAGE.get(name)
        command.epilog = "examples:\n" + "\n".join("  " + line for line in EXAMPLES[name].splitlines())
        for p in [command, *_nested(command)]:
            p.formatter_class = _Formatter
    return parser


def _nested(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    return [p for a in parser._actions if isinstance(a, argparse._SubParsersAction) for p in a.choices.values()]


def _options_of(parser: argparse.ArgumentParser) -> set[str]:
    found = set(parser._option_string_actions)
    for p in _nested(parser):
        found |= _options_of(p)
    return found


def _respell(ours: list[str], subparser: argparse.ArgumentParser) -> list[str]:
    """`--plugin_dir` for `--plugin-dir` (sd-scripts spells with _, we with -), and back."""
    known = _options_of(subparser)
    out = []
    for tok in ours:
        name, eq, value = tok.partition("=")
        if name.startswith("--") and name not in known:
            for other in ("--" + name[2:].replace("_", "-"), "--" + name[2:].replace("-", "_")):
                if other in known:
                    tok = other + eq + value
                    break
        out.append(tok)
    return out


def _unknown_command(word: str) -> str:
    import difflib

    if word in LAUNCHERS or word.endswith(".py"):
        return (f"'{word}' is not a lora-doctor command; to check and run a training command write "
                f"lora-doctor run -- {word} …")
    close = difflib.get_close_matches(word, COMMANDS, n=1)
    hint = f"did you mean '{close[0]}'?" if close else "the commands are: " + ", ".join(COMMANDS)
    return f"unknown command '{word}': {hint}"


def _unrecognized(args, ours: list[str], extras: list[str], subparser) -> str:
    import difflib

    words = [e for e in extras if not e.startswith("-")]
    if getattr(args, "accepts_command", False) and words and (words[0] in LAUNCHERS or words[0].endswith(".py")):
        start = len(ours) - len(extras) if ours[-len(extras):] == extras else ours.index(words[0])
        return (f"put '--' before the training command: lora-doctor {' '.join(ours[:start])} -- "
                f"{' '.join(ours[start:])}")
    options = [e.partition("=")[0] for e in extras if e.startswith("--")]
    known = _options_of(subparser) if args.subcommand else set(subparser._option_string_actions)
    close = difflib.get_close_matches(options[0], sorted(known), n=1) if options else []
    if args.subcommand == "dataset" and options and not close:
        return (f"{options[0]} is not a dataset option; to check a whole training command use "
                f"lora-doctor env --only dataset -- {TRAIN}")
    return (f"unrecognized arguments: {' '.join(extras)}"
            + (f"; did you mean {close[0]}?" if close else ""))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv in (["--version"], ["-V"]):  # answered before anything else is imported
        print(f"lora-doctor {__version__}")
        return 0
    from lora_doctor.output.textout import degrade_unencodable

    degrade_unencodable(sys.stdout, sys.stderr)
    if argv in ([], ["help"]):
        sys.stdout.write(OVERVIEW)
        return USAGE_ERROR if not argv else 0
    if argv[0] == "help":
        argv = [*argv[1:2], "-h"]
    ours, command = split_command(argv)
    try:
        rc = _dispatch(ours, command)
        if sys.stdout is not None:  # pythonw has none
            sys.stdout.flush()
        return rc
    except BrokenPipeError:  # `lora-doctor … | head -1`: the reader has gone, that is fine
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _dispatch(ours: list[str], command: list[str] | None) -> int:
    parser = build_parser()
    at = next((i for i, w in enumerate(ours) if not w.startswith("-")), None)
    if at is not None and ours[at] not in COMMANDS:
        print(f"lora-doctor: error: {_unknown_command(ours[at])}", file=sys.stderr)
        return USAGE_ERROR
    subparser = parser.commands[ours[at]] if at is not None else parser
    if at:  # `lora-doctor --json env`: the command's options may come before its name
        early = [w for w in ours[:at] if w not in ("-h", "--help")]
        ours = [w for w in ours[:at] if w not in early] + [ours[at]] + early + ours[at + 1:]
    ours = _respell(ours, subparser)
    args, extras = parser.parse_known_args(ours)
    if extras:
        where = f"lora-doctor {args.subcommand}" if args.subcommand else "lora-doctor"
        print(f"{where}: error: {_unrecognized(args, ours, extras, subparser)}", file=sys.stderr)
        return USAGE_ERROR
    args.command = command
    if not getattr(args, "handler", None):
        sys.stdout.write(OVERVIEW)
        return USAGE_ERROR
    if command is not None and not getattr(args, "accepts_command", False):
        print(f"lora-doctor {args.subcommand}: error: it does not take a command after '--' "
              f"(see `lora-doctor {args.subcommand} -h`)", file=sys.stderr)
        return USAGE_ERROR
    try:
        return args.handler(args)
    except UsageError as exc:
        print(f"lora-doctor {args.subcommand}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print("lora-doctor: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:
        if os.environ.get("LORA_DOCTOR_DEBUG"):
            raise
        print(f"lora-doctor {args.subcommand}: internal error: {type(exc).__name__}: {exc} "
              "(set LORA_DOCTOR_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return 3


if __name__ == "__main__":
    raise SystemExit(main())
