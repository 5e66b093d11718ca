"""`lora-doctor diagnose LOG|-`: name the cause of a failed run from its log, with the fix."""

from __future__ import annotations

import os
import sys

from lora_doctor.errors import UsageError
from lora_doctor.commands.common import add_plugin_dir


def add_parser(sub) -> None:
    p = sub.add_parser(
        "diagnose", help="name the cause of a failed training run from its log",
        description="Read a training log (a file, or - for stdin) and name the root cause with the fix. "
                    "Exit code: 0 a known cause was found (or no failure in the log), 1 a failure with "
                    "no known cause, 2 usage error.")
    p.add_argument("log", metavar="LOG", help="the log file, or - to read stdin")
    p.add_argument("--json", action="store_true", help="print one JSON object (diagnoses, failures, exit)")
    p.add_argument("-v", "--verbose", action="store_true", help="show frames, every failure and other details")
    p.add_argument("--exit-code", type=int, default=None, metavar="N",
                   help="the training process's exit code, when known")
    add_plugin_dir(p)
    p.set_defaults(handler=run, accepts_command=True)


def _launch(args):
    if not args.command:
        return None
    from lora_doctor.commands.common import parse_launch

    return parse_launch(args.command)


MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"GIF8", b"PK\x03\x04", b"\x1f\x8b", b"7z\xbc\xaf", b"%PDF")
TEXT_CONTROLS = {9, 10, 13, 27, 8, 12}  # tab, newlines, ESC (colours), backspace, form feed


def is_binary(head: bytes) -> bool:
    """An image, an archive or other binary data rather than text (a log in any encoding is text)."""
    if (head.startswith(MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")
            or (head[:2] == b"BM" and head[6:10] == bytes(4))):
        return True
    controls = sum(1 for b in head if b < 32 and b not in TEXT_CONTROLS)
    return head.count(b"\0") > len(head) // 100 or controls > len(head) // 20


def run(args) -> int:
    from lora_doctor.diagnose.match import diagnose_file, diagnose_stream

    launch = _launch(args)
    from lora_doctor.host.pluginmanager import PluginHost

    host = PluginHost(args.plugin_dir)
    kwargs = dict(launch=launch, exit_code=args.exit_code, host=host)
    if args.log == "-":
        if sys.stdin.isatty():
            print("lora-doctor diagnose: reading the log from stdin (paste it, then Ctrl-D; Ctrl-Z Enter on "
                  "Windows)", file=sys.stderr)
        report = diagnose_stream(sys.stdin.buffer, **kwargs)
    else:
        path = args.log
        if not os.path.exists(path):
            raise UsageError(f"{path}: no such file (give the training log, or - to read stdin)")
        if os.path.isdir(path):
            raise UsageError(f"{path} is a folder: give the log file inside it")
        try:
            with open(path, "rb") as fh:
                head = fh.read(8192)
            if is_binary(head):
                raise UsageError(f"{path} is a binary file, not a log: give the text the training printed")
            report = diagnose_file(path, **kwargs)
        except OSError as exc:
            raise UsageError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    for name, why in host.broken():  # on stderr: stdout is the report (or its JSON)
        print(f"lora-doctor: warning: plugin {name} is broken: {why} (see `lora-doctor plugins`)", file=sys.stderr)
    if args.json:
        from lora_doctor.output.render import print_json

        print_json(report.to_json())
    else:
        from lora_doctor.diagnose.render import render_report

        render_report(report, verbose=args.verbose)
    if report.diagnoses:
        return 0
    return 1 if report.failed else 0
