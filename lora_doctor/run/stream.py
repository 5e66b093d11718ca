"""What `lora-doctor run` does with each chunk of the child's output besides copying it: the
redacted log and the line watcher. Both are built for floods: the work per chunk is a few C-speed
regex scans (redact.redact_bytes: no Python code per line or per match) plus copies of the chunk's
edges only; a chunk is copied whole only when it holds a secret. Memory is bounded: a line longer
than MAX_LINE is cut (never inside a secret).
"""

from __future__ import annotations

import re
from typing import Callable

from lora_doctor.redact import redact_bytes, secret_spans

__all__ = ["LineWatcher", "LogWriter", "forced_cut", "redact_bytes", "strip_ansi"]

MAX_LINE = 1 << 16  # a line longer than this is cut (for the log redaction and the watcher)
TAIL_BYTES = 4096  # of a chunk bigger than this, only the lines of its end are offered to the watcher
LOG_BUFFER = 1 << 17  # the pieces of one chunk (a held-back line end, the body) leave in one write(2)

_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """Remove terminal escape sequences (colours, cursor moves) from a decoded line."""
    return _ANSI_RE.sub("", text) if "\x1b" in text else text


def last_eol(data: bytes, start: int = 0) -> int:
    """Index of the last \\n or \\r in data[start:], or -1."""
    return max(data.rfind(b"\n", start), data.rfind(b"\r", start))


def first_eol(data: bytes) -> int:
    """Index of the first \\n or \\r in data, or -1."""
    n, r = data.find(b"\n"), data.find(b"\r")
    return r if n == -1 else n if r == -1 else min(n, r)


def forced_cut(data: bytes) -> int:
    """Where to cut a line that has grown past MAX_LINE: at a blank when there is one, and never
    inside a secret or between a secret and what its rule looks at before it (`--wandb_api_key V`,
    `%3Dhf_…`, `\\x1b[1mhf_…`, a blank-free line holding a token), so what is written and what is
    held back both redact as the whole line would. Where secrets leave no such gap (tokens packed
    into one blank-free line), the cut goes right after one: no secret is ever split."""
    limit = len(data) - 1024
    cut = max(data.rfind(b" ", 0, limit), data.rfind(b"\t", 0, limit)) + 1
    if cut <= 0:
        cut = limit  # no blank: the spans below move the cut off any secret
    spans = list(secret_spans(data, max(0, cut - 4096), min(len(data), cut + 1024)))

    def inside(c: int) -> bool:
        return any(a < c < b for a, b in spans)

    if not inside(cut):
        return cut
    for c in sorted({a for a, _ in spans} | {b for _, b in spans}, reverse=True):
        if 0 < c < cut and not inside(c):
            return c
    ends = [b for _, b in spans if 0 < b < cut]
    return max(ends) if ends else limit


class LogWriter:
    """The child's bytes, secrets redacted, into the log file.

    Whole lines are written; a partial line waits for its end (bounded by MAX_LINE), so a token
    split across two reads is still redacted. Each stream (`channel`: the child's stdout, its
    stderr) has its own partial line, so the log holds both streams' lines whole, in the order they
    ended. Each chunk is on disk when write() returns. A write error (disk full) ends the log, never
    the run: `error` says why.
    """

    def __init__(self, path: str | None):
        self.fh = None
        self.pending: dict[int, bytes] = {}
        self.error = ""
        try:
            self.fh = open(path, "wb", buffering=LOG_BUFFER) if path else None
        except OSError as exc:
            self.error = f"{exc.strerror or exc}"

    def write(self, data: bytes, channel: int = 1) -> None:
        """Log one chunk of output (redacted)."""
        if self.fh is None or self.error:
            return
        try:
            self._write(data, channel)
            self.fh.flush()
        except (OSError, ValueError) as exc:
            self.error = f"{getattr(exc, 'strerror', None) or exc}"

    def _write(self, data: bytes, channel: int) -> None:
        start = 0
        pending = self.pending.pop(channel, b"")
        if pending:
            eol = first_eol(data)
            if eol == -1:
                self._hold(pending + data, channel)
                return
            self.fh.write(redact_bytes(pending + data[:eol + 1]))
            start = eol + 1
        end = last_eol(data, start) + 1
        if end <= start:  # no line end in what is left
            self._hold(data[start:] if start else data, channel)
            return
        body = data if start == 0 and end == len(data) else data[start:end]
        self.fh.write(redact_bytes(body))  # the same object back when nothing is secret: no copy
        if end < len(data):
            self._hold(data[end:], channel)

    def _hold(self, partial: bytes, channel: int) -> None:
        while len(partial) >= MAX_LINE:
            cut = forced_cut(partial)
            self.fh.write(redact_bytes(partial[:cut]))
            partial = partial[cut:]
        if partial:
            self.pending[channel] = partial

    def close(self) -> None:
        """Write the last partial lines and close the file."""
        if self.fh is None:
            return
        try:
            if not self.error:
                for partial in self.pending.values():
                    self.fh.write(redact_bytes(partial))
            self.fh.close()
        except (OSError, ValueError) as exc:
            self.error = self.error or f"{getattr(exc, 'strerror', None) or exc}"
        self.pending = {}
        self.fh = None


class LineWatcher:
    """Splits the stream into lines and offers them (ANSI-stripped) to `callback`; remembers the
    first of `fragments` (byte strings) seen anywhere in the stream, across chunk boundaries.

    Every line is offered while output is ordinary; when one chunk brings more than TAIL_BYTES,
    only the lines of its last TAIL_BYTES are (bounded work, whatever the child prints): a progress
    bar redraws itself and a crash ends the output, so both are seen.
    """

    def __init__(self, callback: Callable[[str], None] | None, fragments: tuple[bytes, ...] = ()):
        self.callback = callback
        self.pending = b""
        self.fragments = fragments
        self.found = b""
        self._tail = b""
        self._overlap = max((len(f) for f in fragments), default=1) - 1

    def feed(self, data: bytes) -> None:
        """Look at one chunk of output."""
        if self.fragments and not self.found:
            self._look_for_fragments(data)
        if self.callback is None:
            return
        end = last_eol(data) + 1
        if end == 0:
            self.pending = (self.pending + data)[-MAX_LINE:] if len(data) < MAX_LINE else data[-MAX_LINE:]
            return
        if end > TAIL_BYTES:
            block = data[end - TAIL_BYTES:end]
            block = block[first_eol(block) + 1:]  # drop the partial first line of the tail
        else:
            block = self.pending + data[:end]
        self.pending = data[end:][-MAX_LINE:]
        for raw in block.replace(b"\r", b"\n").split(b"\n"):
            if raw:
                self.callback(strip_ansi(raw[:MAX_LINE].decode("utf-8", "replace")))

    def _look_for_fragments(self, data: bytes) -> None:
        edge = self._tail + data[:self._overlap]  # a fragment split across two chunks
        for frag in self.fragments:
            # the first byte alone is a memchr (~50x faster than the substring search it saves)
            if frag in edge or (data.find(frag[:1]) != -1 and frag in data):
                self.found = frag
                return
        if self._overlap:
            self._tail = (self._tail + data)[-self._overlap:] if len(data) < self._overlap else data[-self._overlap:]

    def flush(self) -> None:
        """Offer the last line when the stream ended without a line end."""
        if self.callback is not None and self.pending.strip():
            self.callback(strip_ansi(self.pending.decode("utf-8", "replace")))
        self.pending = b""
