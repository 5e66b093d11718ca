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


FIFO_WAIT = 10.0  # seconds a named pipe may stay silent before `diagnose FIFO` gives up


class _FdReader:
    """read(n) on a file descriptor: whatever is there (a pasted line, a pipe's chunk), up to n
    bytes. The first end of file is final, so one Ctrl-D ends a paste on a terminal (a buffered
    reader would wait for a second one)."""

    def __init__(self, fd: int, close: bool = False):
        self.fd, self.close_fd, self.eof = fd, close, False

    def read(self, n: int = 1 << 20) -> bytes:
        if self.eof:
            return b""
        while True:
            try:
                data = os.read(self.fd, n)
                break
            except InterruptedError:
                continue
        self.eof = not data
        return data

    def close(self) -> None:
        if self.close_fd:
            os.close(self.fd)


def _stdin_reader() -> _FdReader:
    """stdin as a reader; a closed stdin (`<&-`) is a usage error, not a crash."""
    try:
        fd = sys.stdin.fileno()
        os.fstat(fd)
    except (AttributeError, OSError, ValueError):
        raise UsageError("stdin is closed: pipe the log in (lora-doctor diagnose - < train.log) "
                         "or give its path") from None
    if sys.stdin.isatty():
        print("lora-doctor diagnose: reading the log from stdin (paste it, then Ctrl-D; Ctrl-Z Enter on "
              "Windows)", file=sys.stderr)
    return _FdReader(fd)


def _special_file_reader(path: str, mode: int) -> _FdReader:
    """A named pipe: read once a writer has written (at most FIFO_WAIT s of waiting, never a hang in
    open()); any other file that is not a regular file is a usage error."""
    import stat

    if not stat.S_ISFIFO(mode) or os.name != "posix":
        kind = ("a character device" if stat.S_ISCHR(mode) else "a block device" if stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "a named pipe" if stat.S_ISFIFO(mode) else "not a file")
        raise UsageError(f"{path} is {kind}, not a log file: give the log file, or pipe it into "
                         "`lora-doctor diagnose -`")
    import select

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # does not wait for a writer
    try:
        ready = select.select([fd], [], [], FIFO_WAIT)[0]
    except (OSError, ValueError):
        ready = []
    if not ready:
        os.close(fd)
        raise UsageError(f"{path} is a named pipe and nothing wrote to it within {FIFO_WAIT:g} s: give the "
                         "log file, or pipe the log into `lora-doctor diagnose -`")
    os.set_blocking(fd, True)
    return _FdReader(fd, close=True)


def _looks_binary(head: bytes) -> bool:
    """is_binary, except for UTF-16 text (what PowerShell 5.1's `>` writes): that is a log too."""
    try:
        from lora_doctor.diagnose.normalize import utf16_codec
    except ImportError:
        utf16_codec = None
    if utf16_codec is not None and utf16_codec(head):
        return False
    return is_binary(head)


def run(args) -> int:
    from lora_doctor.diagnose.match import diagnose_file, diagnose_stream

    launch = _launch(args)
    from lora_doctor.host.pluginmanager import PluginHost

    host = PluginHost(args.plugin_dir)
    kwargs = dict(launch=launch, exit_code=args.exit_code, host=host)
    if args.log == "-":
        report = diagnose_stream(_stdin_reader(), **kwargs)
    else:
        path = args.log
        if not os.path.exists(path):
            raise UsageError(f"{path}: no such file (give the training log, or - to read stdin)")
        if os.path.isdir(path):
            raise UsageError(f"{path} is a folder: give the log file inside it")
        try:
            mode = os.stat(path).st_mode
            import stat

            if not stat.S_ISREG(mode):
                reader = _special_file_reader(path, mode)
                try:
                    report = diagnose_stream(reader, **kwargs)
                finally:
                    reader.close()
            else:
                with open(path, "rb") as fh:
                    head = fh.read(8192)
                if _looks_binary(head):
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
