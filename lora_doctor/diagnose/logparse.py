"""Read any training log into failures: tracebacks (plain, chained, rich box-drawn, per rank),
wrappers (accelerate's CalledProcessError, torch elastic's ChildFailedError), exits without a
traceback (Killed, signals, Windows NTSTATUS codes), and the lines signatures look for.

The log is streamed in chunks, so memory stays bounded for logs of any size:
- bytes: CRLF -> LF, `\\r` progress updates keep their last segment, invalid UTF-8 is replaced,
  ANSI codes are dropped, a line is capped at MAX_LINE characters;
- runs of tqdm progress-bar lines collapse to their last line (plus the first one showing `nan`);
- rich log records folded at the console width are unfolded into one line;
- every normalized line is offered to a `scanner` (the signatures' line regexes, one pass);
- only a bounded ring of recent lines and bounded failures are kept.
"""

from __future__ import annotations

import io
import re
from collections import deque
from dataclasses import dataclass, field

from lora_doctor.model import ExitCause, Failure, Frame

CHUNK = 4 << 20  # bytes read at a time
MAX_LINE = 4096  # characters kept of one line
MAX_MESSAGE = 8192  # characters kept of one exception message
MAX_MESSAGE_LINES = 60
MAX_FRAMES = 120
MAX_FAILURES = 200
RING = 200  # recent lines kept for excerpts
EXCERPT_BEFORE = 8

# Windows NTSTATUS exit codes (shown unsigned) and POSIX signals worth naming.
NTSTATUS = {
    0xC0000005: "0xC0000005 access violation",
    0xC00000FD: "0xC00000FD stack overflow",
    0xC0000409: "0xC0000409 stack buffer overrun (fail-fast)",
    0xC000013A: "0xC000013A terminated by Ctrl+C",
    0xC0000017: "0xC0000017 out of memory (no memory)",
    0xC0000135: "0xC0000135 a DLL was not found",
    0xC000001D: "0xC000001D illegal instruction",
    0xC0000094: "0xC0000094 integer divide by zero",
}
SIGNALS = {1: "SIGHUP", 2: "SIGINT", 4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL",
           11: "SIGSEGV", 13: "SIGPIPE", 15: "SIGTERM"}

# Lines every diagnosis may want, whatever the signatures: found by the scanner like signature regexes.
NOTABLE = {
    "loss_nan": r"\b(?:avr_|avg_|train_|step_)?loss\s*[=:]\s*nan\b",
    "killed": r"^\s*(?:\S+: line \d+:\s+\d+\s+)?Killed\b|\bOut of memory: Killed process\b|\bKilled process \d+",
    "oom_killer": r"Out of memory: Killed process|oom-kill|oom_reaper",
    "paging_file": r"paging file is too small|WinError 1455|os error 1455",
    "cuda_oom": r"CUDA out of memory|CUDA error: out of memory|OutOfMemoryError",
    "launch_command": r"accelerate(?:\.exe|\.EXE)?\"? launch\b.*\.py",  # a GUI echoing the command it runs
}

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_CR_SEGMENTS = re.compile(rb"(?m)^[^\n]*\r(?=[^\n])")  # everything up to the last \r that has text after it
_PROGRESS_RUN = re.compile(r"(?m)(?:^[^\n|]{0,160}\d%\|[^\n]*(?:\n|\Z))+")
_PROGRESS_RUN_B = re.compile(_PROGRESS_RUN.pattern.encode(), re.MULTILINE)
_RANK = re.compile(r"^\[(?:rank|default)(\d+)\]:\s?")
_RANK_INDENTED = re.compile(r"^[ \t]*\[(?:rank|default)\d+\]: ?")
_TB_START = re.compile(r"(Original )?Traceback \(most recent call last\):?")
_FRAME = re.compile(r'^\s*File "(?P<file>[^"]*)", line (?P<line>\d+)(?:, in (?P<func>.*))?')
_EXC = re.compile(r"^(?P<type>(?:[A-Za-z_]\w*\.)*_?[A-Z]\w*[a-z]\w*)(?::\s?(?P<msg>.*))?$")
_ARGPARSE = re.compile(r"^[\w.\-]+: error: (?P<msg>.+)$")
_LOOSE_EXC = re.compile(
    r"^\s*'?(?P<type>(?:[A-Za-z_]\w*\.)*(?:[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Invalid|Failure|Timeout)|"
    r"KeyboardInterrupt|StopIteration|SafetensorError|Exception))(?::\s?(?P<msg>.*)|\s*)$")
_BARE_TYPES = {"KeyboardInterrupt", "MemoryError", "SystemExit", "StopIteration", "AssertionError"}
_CHAIN = re.compile(r"^\s*(During handling of the above exception, another exception occurred|"
                    r"The above exception was the direct cause of the following exception):?\s*$")
_TIME = r"(?:\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?|\d{2}:\d{2}:\d{2}(?:[-.,]\d+)?|\[\d[\d/: -]*\])"
_LEVEL = r"(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)"
_RECORD = re.compile(rf"^(?:(?P<time>{_TIME})\s+|(?P<indent>\s{{4,}}))(?P<level>{_LEVEL})\s")
_RECORD_SRC = re.compile(r"[\w.\-]+\.py:\d+")


def _record_src(line: str, after: int) -> tuple[int, str] | None:
    """(start, "file.py:123") of rich's source column at the right edge of a record line."""
    body = line.rstrip()
    cut = body.rfind(" ") + 1
    if cut <= after or ".py:" not in body[cut:] or not _RECORD_SRC.fullmatch(body, cut):
        return None
    return cut, body[cut:]
_RECORD_MIDLINE = re.compile(rf"(?<=\S)(?=\d{{4}}-\d{{2}}-\d{{2}} \d{{2}}:\d{{2}}:\d{{2}} {_LEVEL}\s)")
_CONTINUATION = re.compile(r"^\s{20,}\S")
_WARNING_LINE = re.compile(r"\b\w*Warning\b|^\s*(?:WARNING|WARN)\b|\bWARNING\[")
_EXIT_MARKERS = [
    (re.compile(r"returned non-zero exit status (-?\d+)"), "code"),
    (re.compile(r"died with <Signals\.(SIG\w+): (\d+)>"), "signal"),
    (re.compile(r"\bexitcode\s*:\s*(-?\d+)"), "code"),
    (re.compile(r"Signal (\d+) \((SIG\w+)\) received by PID"), "signal_num"),
    (re.compile(r"\b(?:exit(?:ed)? (?:with )?(?:code|status)|return code|exit_code)[:= ]+(-?\d+)", re.I), "code"),
    (re.compile(r"\b(32212\d{5}|-10737\d{5})\b"), "code"),
    (re.compile(r"^\s*(?:\S+: line \d+:\s+\d+\s+)?Killed\b"), "killed"),
    (re.compile(r"Segmentation fault"), "segv"),
    (re.compile(r"paging file is too small|WinError 1455"), "paging"),
]
_WRAPPER_TYPES = ("CalledProcessError", "ChildFailedError")
_WORKER_WRAP = re.compile(r"^Caught \w+ in DataLoader worker process \d+")
_CJK = re.compile(r"[\u3000-\u30ff\u3400-\u9fff\uff00-\uffef]")


@dataclass
class ParsedLog:
    """What the parser kept of a log: bounded whatever the log's size."""

    failures: list[Failure] = field(default_factory=list)  # in log order; chains folded into .causes
    exit: ExitCause | None = None
    warnings: list[str] = field(default_factory=list)  # first WARN_KEEP warning lines
    errors: list[str] = field(default_factory=list)  # ERROR/CRITICAL log records (first ones)
    excerpts: dict[int, list[str]] = field(default_factory=dict)  # id(failure) -> lines around it
    tail: list[str] = field(default_factory=list)  # the last lines of the log
    lines: int = 0
    bytes: int = 0
    truncated_lines: int = 0
    root_rank: int | None = None  # "Root Cause (first observed failure)" of torch elastic

    @property
    def root(self) -> Failure | None:
        """The first real failure (of the rank torch elastic names, when it does); else the first wrapper."""
        real = [f for f in self.failures if not f.is_wrapper and f.exception]
        if self.root_rank is not None:
            real = [f for f in real if f.rank == self.root_rank] or real
        if real:
            return real[0]
        return self.failures[0] if self.failures else None

    def ordered_failures(self) -> list[Failure]:
        """Root first, then the others in log order."""
        root = self.root
        return ([root] if root else []) + [f for f in self.failures if f is not root]

    def excerpt(self, failure: Failure) -> list[str]:
        return self.excerpts.get(id(failure), [])


def chain(failure: Failure) -> list[Failure]:
    """A failure and its chained causes, earliest first."""
    return [*failure.causes, failure]


class _Open:
    """A traceback being read."""

    def __init__(self, kind: str, start: int, rank: int | None, nested_in: Failure | None = None):
        self.kind = kind  # "plain" | "rich"
        self.frames: list[Frame] = []
        self.start = start
        self.rank = rank
        self.nested_in = nested_in
        self.header: list[str] = []  # rich: fragments of a frame header
        self.header_full = False
        self.box_closed = False
        self.strays = 0


class _Stream:
    """Reading state of one output stream: unprefixed lines, or one `[rankN]:` rank's lines, so
    interleaved ranks do not mix their tracebacks."""

    def __init__(self):
        self.tb: _Open | None = None
        self.msg_for: Failure | None = None  # failure whose message is still being read
        self.msg_lines = 0
        self.msg_strict = False  # no traceback: only indented lines continue the message
        self.chain_pending: Failure | None = None


MAX_STREAMS = 64


class LogParser:
    """Feed text chunks (or lines); `close()` returns the ParsedLog.

    `scanner`, when given, gets every normalized chunk of text (`scanner.scan(text)`).
    """

    WARN_KEEP = 60
    ERROR_KEEP = 60

    def __init__(self, scanner=None):
        self.scanner = scanner
        self.out = ParsedLog()
        self.ring: deque[str] = deque(maxlen=RING)
        self.streams: dict[int | None, _Stream] = {None: _Stream()}  # per [rankN]: prefix
        self.st = self.streams[None]
        self.record: list[str] | None = None  # rich log record being unfolded
        self._record_prefix = ""
        self._exit_bits: dict[str, object] = {}
        self._emitted: list[str] = []

    # -- input ---------------------------------------------------------------------------
    def feed_text(self, text: str) -> None:
        """Feed normalized text made of whole lines (no trailing partial line)."""
        self._emitted = []
        for line in text.split("\n"):
            if len(line) > MAX_LINE:
                line = line[:MAX_LINE]
                self.out.truncated_lines += 1
            self._physical(line)
        if self.scanner is not None and self._emitted:
            self.scanner.scan("\n".join(self._emitted))
        self._emitted = []

    def close(self) -> ParsedLog:
        self._emitted = []
        self._flush_record()
        if self.scanner is not None and self._emitted:
            self.scanner.scan("\n".join(self._emitted))
        for st in self.streams.values():
            self.st = st
            self._end_message()
            if st.tb is not None:
                self._abandon_tb()
        self.out.tail = list(self.ring)[-40:]
        self.out.exit = self._exit_cause()
        self.out.root_rank = self._exit_bits.get("root_rank")
        return self.out

    # -- rich log records: unfold --------------------------------------------------------
    def _physical(self, line: str) -> None:
        rec = None
        prefix = ""  # torch's `[rank0]:` in front of every line of a rank, records included
        if line[:1] in "[ \t" and (m := _RANK_INDENTED.match(line)):
            prefix, line = m.group(0).lstrip(), line[m.end():]
        if "INFO" in line or "WARN" in line or "ERROR" in line or "DEBUG" in line or "CRITICAL" in line:
            if "%|" in line or "it]" in line:  # a record glued to a progress bar
                parts = _RECORD_MIDLINE.split(line)
                if len(parts) > 1:
                    for part in parts:
                        self._physical(prefix + part)
                    return
            rec = _RECORD.match(line)
            if rec is not None:
                src = _record_src(line, rec.end())
                rec = (rec, src) if (src or rec.group("time")) else None
        if self.record is not None:
            if (rec is None and prefix == self._record_prefix and _CONTINUATION.match(line)
                    and self._record_len() < MAX_LINE):
                self._continue_record(line)
                return
            self._flush_record()
        if rec is not None and self.st.tb is None:
            self.record = [line.rstrip()]
            self._record_parts = rec
            self._record_prefix = prefix
            return
        self._logical(prefix + line)

    def _record_len(self) -> int:
        return sum(len(x) for x in self.record)

    def _continue_record(self, line: str) -> None:
        frag = line.strip()
        if not frag:
            return
        prev = self.record[-1]
        joiner = "" if (_CJK.match(frag) and prev and _CJK.match(prev[-1])) else " "
        self.record.append(joiner + frag)

    def _flush_record(self) -> None:
        if self.record is None:
            return
        m, src = self._record_parts
        head = self.record[0]
        if src:
            head = head[:src[0]].rstrip()
        text = head + "".join(self.record[1:])
        if src:
            text += f"  ({src[1]})"
        text = text[:MAX_LINE]
        self.record = None
        level = m.group("level")
        if level in ("ERROR", "CRITICAL") and len(self.out.errors) < self.ERROR_KEEP:
            self.out.errors.append(text.strip())
        self._logical(self._record_prefix + text)

    # -- one logical line ----------------------------------------------------------------
    def _logical(self, line: str) -> None:
        self.out.lines += 1
        no = self.out.lines
        self.ring.append(line)
        self._emitted.append(line)
        rank = None
        if line.startswith("[") and (m := _RANK.match(line)):
            rank = int(m.group(1))
            line = line[m.end():]
        st = self.streams.get(rank)
        if st is None:
            st = self.streams.setdefault(rank, _Stream()) if len(self.streams) < MAX_STREAMS else self.streams[None]
        self.st = st
        if ("exit" in line or "Killed" in line or "Signal" in line or "died with" in line or "Segmentation" in line
                or "32212" in line or "-10737" in line or "paging file" in line or "WinError 1455" in line):
            self._exit_marker(line)
        if self.st.msg_for is not None:
            if self._message_line(line, no, rank):
                return
        if self.st.tb is not None:
            self._in_traceback(line, no, rank)
            return
        self._idle(line, no, rank)

    def _idle(self, line: str, no: int, rank: int | None) -> None:
        if "Traceback" in line and (m := _TB_START.search(line)):
            kind = "rich" if "╭" in line else "plain"
            self.st.tb = _Open(kind, no, rank, nested_in=None)
            return
        if "exception" in line and _CHAIN.match(line) and self.out.failures:
            mine = [f for f in self.out.failures if f.rank == rank]
            self.st.chain_pending = (mine or self.out.failures)[-1]
            return
        if "File \"" in line and _FRAME.match(line):  # a pasted excerpt without its header
            self.st.tb = _Open("plain", no, rank)
            self._in_traceback(line, no, rank)
            return
        if ("Warning" in line or "WARN" in line) and len(self.out.warnings) < self.WARN_KEEP \
                and _WARNING_LINE.search(line):
            self.out.warnings.append(line.strip()[:500])
            return
        if ": error: " in line and (m := _ARGPARSE.match(line.strip())):
            self._add_failure("argparse.ArgumentError", m.group("msg"), [], rank, no, no)
            return
        if ("Error" in line or "Exception" in line or "Exit" in line or "Interrupt" in line or "Invalid" in line
                or "Failure" in line or "Timeout" in line or "StopIteration" in line):
            m = _LOOSE_EXC.match(line)
            if m and (m.group("msg") is not None or m.group("type").rsplit(".", 1)[-1] in _BARE_TYPES):
                f = self._add_failure(m.group("type"), m.group("msg") or "", [], rank, no, no)
                # no traceback: only indented lines continue its message (elastic's summary block aside)
                self.st.msg_strict = f.exception_name != "ChildFailedError"

    # -- inside a traceback --------------------------------------------------------------
    def _in_traceback(self, line: str, no: int, rank: int | None) -> None:
        tb = self.st.tb
        stripped = line.strip()
        if tb.kind == "rich" and not tb.box_closed:
            if not stripped or stripped[0] in "│╭╰" or stripped.startswith("...") or not _EXC.match(stripped):
                self._rich_line(line)
                return
            self._rich_header_done()  # a cut-off box followed by its exception line
            tb.box_closed = True
        if "Traceback" in line and _TB_START.search(line):  # the previous one was cut off
            self._abandon_tb()
            self._idle(line, no, rank)
            return
        m = _FRAME.match(line) if "File \"" in line else None
        if m:
            self._add_frame(Frame(m.group("file"), int(m.group("line")), (m.group("func") or "").strip()))
            return
        if not stripped or stripped.startswith(("...", "[Previous line")):
            return
        if line[0] in " \t" and not (tb.frames and _LOOSE_EXC.match(line) and ": " in stripped):
            return  # source lines and carets (an indented paste keeps its exception line, though)
        m = _EXC.match(stripped)
        if m and not _RECORD.match(line):
            self.st.tb = None
            f = self._add_failure(m.group("type"), m.group("msg") or "", tb.frames, tb.rank if tb.rank is not None
                                  else rank, no, tb.start, nested_in=tb.nested_in)
            self.st.msg_for, self.st.msg_lines = f, 0
            return
        tb.strays += 1
        if tb.strays > 30:
            self._abandon_tb()

    def _rich_line(self, line: str) -> None:
        tb = self.st.tb
        s = line.strip()
        if s.startswith("╰"):
            self._rich_header_done()
            tb.box_closed = True
            return
        if not s.startswith("│"):
            return
        closed = s.endswith("│") and len(s) > 1
        inner = s[1:-1] if closed else s[1:]
        content = inner[1:] if inner.startswith(" ") else inner
        if closed and content.endswith(" "):
            content = content[:-1]  # the box's right margin
        body = content.strip()
        if not body:
            self._rich_header_done()
            return
        if body[0] in "╭│╰" or re.match(r"^(?:❱\s*)?\d+\s+│", body) or body.startswith(("❱", "...")) \
                or "frames hidden" in body:
            self._rich_header_done()
            return
        full = closed and not content.endswith(" ")  # hard-wrapped at the box edge: no space lost
        if tb.header and not tb.header_full:
            tb.header.append(" ")
        tb.header.append(body)
        tb.header_full = full

    def _rich_header_done(self) -> None:
        tb = self.st.tb
        if not tb.header:
            return
        text = "".join(tb.header)
        tb.header = []
        m = re.match(r"^(?P<file>.+?):(?P<line>\d+) in (?P<func>\S+)$", text)
        if m:
            self._add_frame(Frame(m.group("file"), int(m.group("line")), m.group("func")))

    def _add_frame(self, frame: Frame) -> None:
        frames = self.st.tb.frames
        if len(frames) >= MAX_FRAMES:
            del frames[20]  # keep the outermost and the innermost frames
        frames.append(frame)

    def _abandon_tb(self) -> None:
        """A traceback without its exception line (cut off): keep it as a failure of unknown type."""
        tb, self.st.tb = self.st.tb, None
        if tb.frames:
            self._add_failure("", "", tb.frames, tb.rank, tb.start, tb.start, nested_in=tb.nested_in)

    # -- exception messages ----------------------------------------------------------------
    def _message_line(self, line: str, no: int, rank: int | None) -> bool:
        """Continue the current message with this line; False when the message has ended."""
        f = self.st.msg_for
        s = line.strip()
        if "Traceback" in line and (m := _TB_START.search(line)):
            self._end_message()
            if m.group(1):  # "Original Traceback": the real one, raised in a DataLoader worker
                f.is_wrapper = True
                self.st.tb = _Open("plain", no, rank, nested_in=f)
                return True
            return False
        if (not s or (self.st.msg_strict and line[0] not in " \t") or _CHAIN.match(line) or s[0] in "╭│╰"
                or self.st.msg_lines >= MAX_MESSAGE_LINES or _RECORD.match(line) or _PROGRESS_LINE.match(line)
                or _NOT_MESSAGE.match(line) or (line[0] not in " \t" and _NEXT_EXC.match(line))):
            self._end_message()
            return False
        if len(f.message) < MAX_MESSAGE:
            f.message = (f.message + "\n" + line.rstrip())[:MAX_MESSAGE]
        self.st.msg_lines += 1
        return True

    def _end_message(self) -> None:
        f, self.st.msg_for = self.st.msg_for, None
        self.st.msg_strict = False
        if f is None:
            return
        if f.exception_name == "ChildFailedError":
            for pat in (r"\brank\s*:\s*(\d+)",):
                m = re.search(pat, f.message)
                if m:
                    self._exit_bits.setdefault("root_rank", int(m.group(1)))
        from lora_doctor.redact import redact_text

        f.message = redact_text(f.message)

    def _add_failure(self, exc: str, msg: str, frames, rank, no: int, start: int, nested_in=None) -> Failure:
        f = Failure(exception=exc, message=msg[:MAX_MESSAGE], frames=list(frames), rank=rank, line_no=no)
        name = f.exception_name
        if _handled(f):  # printed, caught and survived: a warning, not a failure
            if len(self.out.warnings) < self.WARN_KEEP:
                self.out.warnings.append(f"{exc}: {msg}"[:500])
            return f
        if name in _WRAPPER_TYPES or _WORKER_WRAP.match(msg):
            f.is_wrapper = True
        if self.st.chain_pending is not None and nested_in is None:
            prev = self.st.chain_pending
            self.st.chain_pending = None
            if prev in self.out.failures:
                self.out.failures.remove(prev)
                f.causes = [*prev.causes, prev]
                prev.causes = []
        if len(self.out.failures) < MAX_FAILURES:
            self.out.failures.append(f)
            before = list(self.ring)
            first = max(0, len(before) - (no - start) - 1 - EXCERPT_BEFORE)
            self.out.excerpts[id(f)] = [x[:300] for x in before[first:]][-60:]
        if self.st.msg_for is None and exc:
            self.st.msg_for, self.st.msg_lines = f, 0
        return f

    # -- how the process ended -----------------------------------------------------------
    def _exit_marker(self, line: str) -> None:
        bits = self._exit_bits
        for rx, kind in _EXIT_MARKERS:
            m = rx.search(line)
            if not m:
                continue
            if kind == "code":
                code = int(m.group(1))
                if code != 0:
                    bits.setdefault("codes", []).append(code)
            elif kind == "signal":
                bits["signal"] = int(m.group(2))
            elif kind == "signal_num":
                bits["signal"] = int(m.group(1))
            elif kind == "killed":
                bits["killed"] = True
            elif kind == "segv":
                bits["signal"] = 11
            elif kind == "paging":
                bits["paging"] = True

    def _exit_cause(self) -> ExitCause | None:
        bits = self._exit_bits
        if not bits or set(bits) == {"root_rank"}:
            return None
        codes = bits.get("codes") or [None]
        # the most telling code: an NTSTATUS or a signal over a plain status, the child's over 1
        code = max(codes, key=lambda c: 0 if c is None else 3 if abs(c) > 255 else 2 if c < 0 else 1 if c != 1 else 0.5)
        return exit_cause(code, signal=bits.get("signal"), killed=bool(bits.get("killed")),
                          paging=bool(bits.get("paging")))


_PROGRESS_LINE = re.compile(r"^[^|]{0,160}\d%\|")


def _handled(f: Failure) -> bool:
    """A traceback a library prints and then carries on from: xformers probing for triton at import."""
    return (f.exception_name == "ModuleNotFoundError" and f.message.startswith("No module named 'triton'")
            and any("xformers" in fr.file for fr in f.frames))


# Lines that end an exception message: an elision (`...`), a frame, glog/torch elastic records,
# shell prompts and pauses, launcher chatter printed after the crash.
_NOT_MESSAGE = re.compile(
    r"^\s*(?:\.\.\.|…)\s*$|^\s*File \"[^\"]*\", line \d+|^[EWIF]\d{4} \d\d:\d\d:\d\d"
    r"|^\(\w[\w.\-]*\) |^[A-Za-z]:\\[^>\n]*>|^PS [A-Za-z]:\\|^\S+@\S+:\S*[$#] |^Press any key|^Drücken Sie"
    r"|^wandb: |^Exception ignored in|^Error in sys\.excepthook|^\[(?:rank|default)\d+\]:|^\d\d:\d\d:\d\d-\d+ \w+ ")
# An unindented `pkg.SomeError: text` line after a message is the next failure, not more message.
_NEXT_EXC = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Invalid|Warning):\s")


def exit_cause(code: int | None, *, signal: int | None = None, killed: bool = False,
               paging: bool = False) -> ExitCause:
    """An ExitCause from a return code (negative = signal, 128+N = shell's signal, NTSTATUS)."""
    ntstatus = None
    if code is not None:
        unsigned = code & 0xFFFFFFFF if code < -255 else code
        if unsigned >= 0xC0000000:
            ntstatus = NTSTATUS.get(unsigned, f"0x{unsigned:08X}")
            code = unsigned
        elif code < 0 and signal is None:
            signal = -code
        elif 128 < code < 160 and signal is None and code - 128 in SIGNALS:
            signal = code - 128
    if killed and signal is None:
        signal = 9
    parts = []
    if ntstatus:
        parts.append(f"Windows status {ntstatus}")
    if signal:
        parts.append(f"killed by signal {signal} ({SIGNALS.get(signal, 'signal')})")
    if paging:
        parts.append("Windows could not commit memory: the paging file is too small")
    if code is not None and not ntstatus and not signal:
        parts.append(f"exit code {code}")
    return ExitCause(code=code, signal=signal, ntstatus=ntstatus, description="; ".join(parts))


# -- streaming: bytes -> normalized text chunks ------------------------------------------------
def _normalize_bytes(data: bytes) -> str:
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
        if b"\r" in data:
            data = _CR_SEGMENTS.sub(b"", data).replace(b"\r", b"")
    if b"\x1b" in data:  # colour codes first, so they cannot hide a progress bar
        text = _ANSI.sub("", data.decode("utf-8", "replace"))
        return _PROGRESS_RUN.sub(_collapse_progress, text) if "%|" in text else text
    if b"%|" in data:  # on bytes: about twice as fast as on the decoded text
        data = _PROGRESS_RUN_B.sub(_collapse_progress, data)
    return data.decode("utf-8", "replace")


def _collapse_progress(m: re.Match):
    """A run of progress-bar lines -> its last line, plus the first one that shows `nan`."""
    run = m.group(0)
    nl = "\n" if isinstance(run, str) else b"\n"
    end = run.endswith(nl)
    body = run[:-1] if end else run
    last_nl = body.rfind(nl)
    if last_nl < 0:
        return run
    keep = body[last_nl + 1:]
    nan = body.find("nan" if isinstance(run, str) else b"nan", 0, last_nl)
    if nan >= 0:
        start = body.rfind(nl, 0, nan) + 1
        stop = body.find(nl, nan)
        first_nan = body[start:stop]
        if first_nan != keep:
            keep = first_nan + nl + keep
    return keep + (nl if end else nl[:0])


def iter_chunks(stream, chunk_size: int = CHUNK):
    """Normalized text chunks of whole lines from a binary stream; a line is at most MAX_LINE
    characters (an endless line keeps its last `\\r` segment or its start)."""
    carry = b""
    skipping = False  # inside an over-long line whose start we already kept
    while True:
        block = stream.read(chunk_size)
        if not block:
            break
        if isinstance(block, str):
            block = block.encode("utf-8", "surrogateescape")
        if skipping:
            nl = block.find(b"\n")
            if nl < 0:
                continue
            block = block[nl + 1:]
            skipping = False
        data = carry + block
        nl = data.rfind(b"\n")
        if nl < 0:
            carry = data
            if len(carry) > MAX_LINE * 4:
                cr = carry.rfind(b"\r", 0, len(carry) - 1)
                if cr >= 0 and len(carry) - cr < MAX_LINE * 4:
                    carry = carry[cr + 1:]
                else:
                    yield _normalize_bytes(carry[:MAX_LINE * 4]), len(block)
                    carry, skipping = b"", True
            continue
        carry = data[nl + 1:]
        yield _normalize_bytes(data[:nl]), len(block)
    if carry:
        yield _normalize_bytes(carry), 0


def parse_stream(stream, scanner=None) -> ParsedLog:
    """Parse a binary (or text) stream to the end."""
    parser = LogParser(scanner)
    total = 0
    for text, size in iter_chunks(stream):
        total += size
        parser.feed_text(text)
    out = parser.close()
    out.bytes = total
    return out


def parse_text(text: str | bytes, scanner=None) -> ParsedLog:
    """Parse a whole log held in memory."""
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
    out = parse_stream(io.BytesIO(data), scanner)
    out.bytes = len(data)
    return out
