"""The parser: a training log -> failures (tracebacks plain, chained, rich box-drawn, per rank,
translated; wrappers such as accelerate's CalledProcessError and torch elastic's ChildFailedError;
argparse errors; exception lines pasted without their traceback) and how the process ended.

The stages, one module each:
- diagnose/normalize.py: bytes -> text chunks of whole lines (CRLF, `\\r`, ANSI, invalid UTF-8,
  progress bars collapsed, lines capped), streamed so memory stays bounded for logs of any size;
- diagnose/paste.py: what a paste did to each line (markdown, front-end prefixes, translation);
- this module: rich log records folded at the console width are unfolded into one line, then the
  traceback structure is read; every normalized line is offered to a `scanner` (the signatures'
  line regexes, one pass); only a bounded ring of recent lines and bounded failures are kept;
- diagnose/exit_marks.py: exit statuses, signals and Windows NTSTATUS codes;
- diagnose/notable.py: the vocabulary of notable lines (NaN loss, OOM, killed, ...), shared with
  the live watcher.
"""

from __future__ import annotations

import builtins
import io
import re
from collections import deque
from dataclasses import dataclass, field

from lora_doctor.diagnose.exit_marks import NTSTATUS, SIGNALS, ExitTracker, exit_cause, may_mark_exit  # noqa: F401
from lora_doctor.diagnose.normalize import CHUNK, MAX_LINE, iter_chunks, normalize_bytes  # noqa: F401
from lora_doctor.diagnose.notable import CJK_RE, NOTABLE, RANK_INDENTED_RE, RANK_RE  # noqa: F401
from lora_doctor.diagnose.paste import PasteFixer
from lora_doctor.model import ExitCause, Failure, Frame

MAX_MESSAGE = 8192  # characters kept of one exception message
MAX_MESSAGE_LINES = 60
MAX_FRAMES = 120
MAX_FAILURES = 200
RING = 200  # recent lines kept for excerpts
EXCERPT_BEFORE = 8

_TB_START = re.compile(r"(Original )?Traceback \(most recent call last\):?", re.IGNORECASE)
_FRAME = re.compile(r'^\s*[Ff]ile "(?P<file>[^"]*)", [Ll]ine (?P<line>\d+)(?:, in (?P<func>.*))?')
_EXC = re.compile(r"^(?P<type>(?:[A-Za-z_]\w*\.)*_?[A-Z]\w*[a-z]\w*)(?::\s?(?P<msg>.*))?$")
_ARGPARSE = re.compile(r"^[\w.\-]+: error: (?P<msg>.+)$")
_LOOSE_EXC = re.compile(
    r"^\s*'?(?P<type>(?:[A-Za-z_]\w*\.)*(?:[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Invalid|Failure|Timeout)|"
    r"KeyboardInterrupt|StopIteration|SafetensorError|Exception))(?::\s?(?P<msg>.*)|\s*)$")
# a type in another letter case (a forum lower-cased the paste): only ...error / ...exception, with a message
_ANYCASE_EXC = re.compile(r"^\s*'?(?P<type>(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?i:error|exception)):\s?(?P<msg>.*)$")
_BARE_TYPES = {"KeyboardInterrupt", "MemoryError", "SystemExit", "StopIteration", "AssertionError"}
_CHAIN = re.compile(r"^\s*(During handling of the above exception, another exception occurred|"
                    r"The above exception was the direct cause of the following exception):?\s*$", re.IGNORECASE)
_TIME = r"(?:\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?|\d{2}:\d{2}:\d{2}(?:[-.,]\d+)?|\[\d[\d/: -]*\])"
_LEVEL = r"(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL)"
_RECORD = re.compile(rf"^(?:(?P<time>{_TIME})\s+|(?P<indent>\s{{4,}}))(?P<level>{_LEVEL})\s")
_RECORD_SRC = re.compile(r"[\w.\-]+\.py:\d+")
# builtin exception names by their lower-cased form, to restore a lower-cased paste's type
_BUILTIN_EXC = {n.lower(): n for n in dir(builtins) if isinstance(getattr(builtins, n), type)
                and issubclass(getattr(builtins, n), BaseException)}
_WRAPPER_TYPES = ("calledprocesserror", "childfailederror")


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
_WORKER_WRAP = re.compile(r"^Caught \w+ in DataLoader worker process \d+")


def restore_case(exc_type: str) -> str:
    """`runtimeerror` -> `RuntimeError` (a builtin's name); other names as written."""
    if exc_type[:1].isupper() or not exc_type:
        return exc_type
    head, _, last = exc_type.rpartition(".")
    fixed = _BUILTIN_EXC.get(last.lower())
    return (head + "." if head else "") + fixed if fixed else exc_type


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
    noticed: dict = field(default_factory=dict)  # NOTABLE name -> line, for forms only read line by line

    @property
    def root(self) -> Failure | None:
        """The first real failure (of the rank torch elastic names, when it does); else the first wrapper.

        Real: not a wrapper, and with an exception type or a message (a traceback cut before its
        exception line has neither; a message pasted alone has no type)."""
        real = [f for f in self.failures if not f.is_wrapper and (f.exception or f.message)]
        if self.root_rank is not None:
            real = [f for f in real if f.rank == self.root_rank] or real
        if real:
            return real[0]
        return self.failures[0] if self.failures else None

    @property
    def has_typed_failure(self) -> bool:
        """A real (not wrapper) failure with an exception type: the log has its own error."""
        return any(f.exception and not f.is_wrapper for f in self.failures)

    def ordered_failures(self) -> list[Failure]:
        """Root first, then the others in log order."""
        root = self.root
        return ([root] if root else []) + [f for f in self.failures if f is not root]

    def excerpt(self, failure: Failure) -> list[str]:
        return self.excerpts.get(id(failure), [])

    def add_standalone(self, failure: Failure, excerpt: list[str] | None = None) -> None:
        """A failure found after parsing (an error message pasted alone), in log order."""
        if len(self.failures) >= MAX_FAILURES:
            return
        at = next((i for i, f in enumerate(self.failures) if f.line_no > failure.line_no), len(self.failures))
        self.failures.insert(at, failure)
        if excerpt is not None:
            self.excerpts[id(failure)] = excerpt


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
        self.flat = False  # a frame at column 0: the paste lost the indentation


class _Stream:
    """Reading state of one output stream: unprefixed lines, or one `[rankN]:` rank's lines, so
    interleaved ranks do not mix their tracebacks."""

    def __init__(self):
        self.tb: _Open | None = None
        self.msg_for: Failure | None = None  # failure whose message is still being read
        self.msg_lines = 0
        self.msg_strict = False  # no traceback: only indented lines continue the message
        self.msg_prefixed = False  # its exception line had a front-end prefix
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
        self._exit = ExitTracker()
        self._root_rank: int | None = None
        self._emitted: list[str] = []
        self._paste = PasteFixer()

    # -- input ---------------------------------------------------------------------------
    def feed_text(self, text: str) -> None:
        """Feed normalized text made of whole lines (no trailing partial line)."""
        self._emitted = []
        first = self.out.lines + 1
        paste = self._paste
        for line in text.split("\n"):
            if len(line) > MAX_LINE:
                line = line[:MAX_LINE]
                self.out.truncated_lines += 1
            for part in paste.physical(line):
                self._physical(part)
        if self.scanner is not None and self._emitted:
            self._scan(first)
        self._emitted = []

    def close(self) -> ParsedLog:
        self._emitted = []
        first = self.out.lines + 1
        for part in self._paste.flush():
            self._physical(part)
        self._flush_record()
        if self.scanner is not None and self._emitted:
            self._scan(first)
        for st in self.streams.values():
            self.st = st
            self._end_message()
            if st.tb is not None:
                self._abandon_tb()
        self.out.tail = list(self.ring)[-40:]
        self.out.exit = self._exit.cause()
        if self._exit.paging_line:  # the paging file in any language (the scanner has the Latin-script ones)
            self.out.noticed["paging_file"] = self._exit.paging_line
        self.out.root_rank = self._root_rank
        return self.out

    def _scan(self, first: int) -> None:
        if getattr(self.scanner, "numbered", False):  # it records the line numbers of its hits
            self.scanner.scan("\n".join(self._emitted), first)
        else:
            self.scanner.scan("\n".join(self._emitted))

    # -- rich log records: unfold --------------------------------------------------------
    def _physical(self, line: str) -> None:
        rec = None
        prefix = ""  # torch's `[rank0]:` in front of every line of a rank, records included
        if line[:1] in "[ \t" and (m := RANK_INDENTED_RE.match(line)):
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
        joiner = "" if (CJK_RE.match(frag) and prev and CJK_RE.match(prev[-1])) else " "
        self.record.append(joiner + frag)

    def _flush_record(self) -> None:
        if self.record is None:
            return
        m, src = self._record_parts
        head = self.record[0]
        if src:
            head = head[:src[0]].rstrip()
        body = head + "".join(self.record[1:])
        text = (body + f"  ({src[1]})" if src else body)[:MAX_LINE]
        self.record = None
        level = m.group("level")
        if level in ("ERROR", "CRITICAL") and len(self.out.errors) < self.ERROR_KEEP:
            self.out.errors.append(text.strip())
        # the record's own parts are known: its message is what follows the level, without the source
        self._logical(self._record_prefix + text, self._record_prefix + body[m.end():].lstrip()[:MAX_LINE])

    # -- one logical line ----------------------------------------------------------------
    def _logical(self, text: str, parse: str | None = None) -> None:
        for scan, parsed, prefixed in self._paste.logical(text, parse):
            self._line(scan, parsed, prefixed)

    def _line(self, scan: str, line: str, prefixed: bool = False) -> None:
        """One logical line: `scan` as printed (kept, scanned), `line` without front-end prefixes (parsed)."""
        self.out.lines += 1
        no = self.out.lines
        self.ring.append(scan)
        self._emitted.append(scan)
        rank = None
        if line.startswith("[") and (m := RANK_RE.match(line)):
            rank = int(m.group(1))
            line = line[m.end():]
        st = self.streams.get(rank)
        if st is None:
            st = self.streams.setdefault(rank, _Stream()) if len(self.streams) < MAX_STREAMS else self.streams[None]
        self.st = st
        if may_mark_exit(line):
            self._exit.line(line)
        if self.st.msg_for is not None:
            if self._message_line(line, no, rank, prefixed):
                return
        if self.st.tb is not None:
            self._in_traceback(line, no, rank, prefixed)
            return
        self._idle(line, no, rank, prefixed, RANK_RE.sub("", scan, count=1) if rank is not None else scan)

    def _idle(self, line: str, no: int, rank: int | None, prefixed: bool = False, printed: str | None = None) -> None:
        """`printed`: the line with its front-end prefix (a record's level says it is a warning)."""
        if "raceback" in line and (m := _TB_START.search(line)):
            kind = "rich" if "╭" in line else "plain"
            self.st.tb = _Open(kind, no, rank, nested_in=None)
            return
        if "xception" in line and _CHAIN.match(line) and self.out.failures:
            mine = [f for f in self.out.failures if f.rank == rank]
            self.st.chain_pending = (mine or self.out.failures)[-1]
            return
        if 'ile "' in line and _FRAME.match(line):  # a pasted excerpt without its header
            self.st.tb = _Open("plain", no, rank)
            self._in_traceback(line, no, rank)
            return
        printed = line if printed is None else printed
        if ("Warning" in printed or "WARN" in printed) and len(self.out.warnings) < self.WARN_KEEP \
                and _WARNING_LINE.search(printed):
            self.out.warnings.append(printed.strip()[:500])
            return
        if ": error: " in line and (m := _ARGPARSE.match(line.strip())):
            self._add_failure("argparse.ArgumentError", m.group("msg"), [], rank, no, no)
            return
        if prefixed and (rec := _RECORD.match(printed)) and rec.group("level") not in ("ERROR", "CRITICAL"):
            return  # a log record below ERROR quoting an exception is not a failure
        if ("rror" in line or "xception" in line or "Exit" in line or "Interrupt" in line or "Invalid" in line
                or "Failure" in line or "Timeout" in line or "StopIteration" in line):
            m = _LOOSE_EXC.match(line) or _ANYCASE_EXC.match(line)
            if m and (m.group("msg") is not None or m.group("type").rsplit(".", 1)[-1] in _BARE_TYPES):
                f = self._add_failure(restore_case(m.group("type")), m.group("msg") or "", [], rank, no, no)
                # no traceback: only indented lines continue its message (elastic's summary block aside)
                self.st.msg_strict = f.exception_name != "ChildFailedError"
                self.st.msg_prefixed = prefixed

    # -- inside a traceback --------------------------------------------------------------
    def _in_traceback(self, line: str, no: int, rank: int | None, prefixed: bool = False) -> None:
        tb = self.st.tb
        stripped = line.strip()
        if tb.kind == "rich" and not tb.box_closed:
            if not stripped or stripped[0] in "│╭╰" or stripped.startswith("...") or not (
                    _EXC.match(stripped) or _ANYCASE_EXC.match(stripped)):
                self._rich_line(line)
                return
            self._rich_header_done()  # a cut-off box followed by its exception line
            tb.box_closed = True
        if "raceback" in line and _TB_START.search(line):  # the previous one was cut off
            self._abandon_tb()
            self._idle(line, no, rank, prefixed)
            return
        m = _FRAME.match(line) if 'ile "' in line else None
        if m:
            if line[:1] not in " \t":
                tb.flat = True
            self._add_frame(Frame(m.group("file"), int(m.group("line")), (m.group("func") or "").strip()))
            return
        if not stripped or stripped.startswith(("...", "[Previous line")):
            return
        if line[0] in " \t" and not (tb.frames and _LOOSE_EXC.match(line) and ": " in stripped):
            return  # source lines and carets (an indented paste keeps its exception line, though)
        m = _EXC.match(stripped)
        if m is not None and ((tb.flat and m.group("msg") is None) or prefixed) and not _LOOSE_EXC.match(stripped):
            m = None  # flat paste or a front end's record: a source line or a log message, not the exception
        if m is None:
            m = _ANYCASE_EXC.match(stripped)
        if m:
            self.st.tb = None
            f = self._add_failure(restore_case(m.group("type")), m.group("msg") or "", tb.frames,
                                  tb.rank if tb.rank is not None else rank, no, tb.start, nested_in=tb.nested_in)
            self.st.msg_for, self.st.msg_lines = f, 0
            self.st.msg_prefixed = prefixed
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
    def _message_line(self, line: str, no: int, rank: int | None, prefixed: bool = False) -> bool:
        """Continue the current message with this line; False when the message has ended."""
        f = self.st.msg_for
        s = line.strip()
        if "raceback" in line and (m := _TB_START.search(line)):
            self._end_message()
            if m.group(1):  # "Original Traceback": the real one, raised in a DataLoader worker
                f.is_wrapper = True
                self.st.tb = _Open("plain", no, rank, nested_in=f)
                return True
            return False
        if (not s or (self.st.msg_strict and line[0] not in " \t") or _CHAIN.match(line) or s[0] in "╭│╰"
                or (prefixed and not self.st.msg_prefixed)  # the next record of a front end's log
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
        self.st.msg_prefixed = False
        if f is None:
            return
        if f.exception_name == "ChildFailedError":
            m = re.search(r"\brank\s*:\s*(\d+)", f.message)
            if m and self._root_rank is None:
                self._root_rank = int(m.group(1))
        from lora_doctor.redact import redact_text

        f.message = redact_text(f.message)

    def _add_failure(self, exc: str, msg: str, frames, rank, no: int, start: int, nested_in=None) -> Failure:
        f = Failure(exception=exc, message=msg[:MAX_MESSAGE], frames=list(frames), rank=rank, line_no=no)
        name = f.exception_name
        if _handled(f):  # printed, caught and survived: a warning, not a failure
            if len(self.out.warnings) < self.WARN_KEEP:
                self.out.warnings.append(f"{exc}: {msg}"[:500])
            return f
        if name.lower() in _WRAPPER_TYPES or _WORKER_WRAP.match(msg):
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


_PROGRESS_LINE = re.compile(r"^[^|]{0,160}\d%\|")


def _handled(f: Failure) -> bool:
    """A traceback a library prints and then carries on from: xformers probing for triton at import."""
    return (f.exception_name.lower() == "modulenotfounderror"
            and f.message.lower().startswith("no module named 'triton'")
            and any("xformers" in fr.file.lower() for fr in f.frames))


# Lines that end an exception message: an elision (`...`), a frame, glog/torch elastic records,
# shell prompts and pauses, launcher chatter printed after the crash, a front end's verdict.
_NOT_MESSAGE = re.compile(
    r"^\s*(?:\.\.\.|…)\s*$|^\s*File \"[^\"]*\", line \d+|^[EWIF]\d{4} \d\d:\d\d:\d\d"
    r"|^\(\w[\w.\-]*\) |^[A-Za-z]:\\[^>\n]*>|^PS [A-Za-z]:\\|^\S+@\S+:\S*[$#] |^Press any key|^Drücken Sie"
    r"|^wandb: |^Exception ignored in|^Error in sys\.excepthook|^\[(?:rank|default)\d+\]:|^\d\d:\d\d:\d\d-\d+ \w+ "
    r"|^Training (?:failed|finished|complete)|^训练(?:失败|完成|结束)|^請按任意鍵|^请按任意键", re.IGNORECASE)
# An unindented `pkg.SomeError: text` line after a message is the next failure, not more message.
_NEXT_EXC = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception|Exit|Interrupt|Invalid|Warning):\s")


# -- the whole log ------------------------------------------------------------------------------
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
