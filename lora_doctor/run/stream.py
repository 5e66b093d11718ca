"""What `lora-doctor run` does with each chunk of the child's output besides copying it: the
redacted log and the line watcher. Both are built for floods: the work per chunk is a few C-speed
scans (`bytes.find`) plus copies of the chunk's edges only; a whole chunk is copied only when it may
hold a secret. Memory is bounded: a line longer than MAX_LINE is cut.
"""

from __future__ import annotations

import re
from typing import Callable

MAX_LINE = 1 << 16  # a line longer than this is cut (for the log redaction and the watcher)
TAIL_BYTES = 4096  # of a chunk bigger than this, only the lines of its end are offered to the watcher
LOG_BUFFER = 1 << 17  # the pieces of one chunk (a held-back line end, the body) leave in one write(2)

_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
# what redact_text replaces starts with one of these (a token, or a secret option name);
# the look-behinds make it one pass, ~2.5x faster than bytes.find for each prefix
_TOKEN_START_B = re.compile(rb"_(?<=hf_)|_(?<=api_org_)")
_SECRET_OPTION_B = re.compile(rb"--[\w-]*?(?:token|key|secret|password)", re.IGNORECASE)
# a forced cut (a line over MAX_LINE) must not separate a secret option from its value
_OPTION_AT_END_B = re.compile(rb"--[\w-]*?(?:token|key|secret|password)[=\s]*$", re.IGNORECASE)


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


def may_hold_secret(data: bytes, start: int = 0, end: int | None = None) -> bool:
    """Cheap pre-test for redact_text's patterns in data[start:end], without copying it."""
    end = len(data) if end is None else end
    # one-byte searches (memchr, ~60x faster than a substring search) rule most chunks out first
    if data.find(b"_", start, end) != -1 and _TOKEN_START_B.search(data, start, end) is not None:
        return True
    return (data.find(b"-", start, end) != -1 and data.find(b"--", start, end) != -1
            and _SECRET_OPTION_B.search(data, start, end) is not None)


def redact_bytes(data: bytes) -> bytes:
    """redact_text on raw bytes (undecodable bytes kept as they are)."""
    if not may_hold_secret(data):
        return data
    from lora_doctor.redact import redact_text

    return redact_text(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


def forced_cut(data: bytes) -> int:
    """Where to cut a line that has grown past MAX_LINE: at a blank, and never between a secret
    option and its value, so what is written and what is held back both redact correctly."""
    limit = len(data) - 1024
    cut = max(data.rfind(b" ", 0, limit), data.rfind(b"\t", 0, limit)) + 1
    if cut <= 0:
        return limit  # 63 KiB without a blank: no token or option=value straddles it sensibly
    m = _OPTION_AT_END_B.search(data, max(0, cut - 256), cut)
    return m.start() if m and m.start() > 0 else cut


class LogWriter:
    """The child's bytes, secrets redacted, into the log file.

    Whole lines are written; a partial line waits for its end (bounded by MAX_LINE), so a token
    split across two reads is still redacted. Each chunk is on disk when write() returns. A write
    error (disk full) ends the log, never the run: `error` says why.
    """

    def __init__(self, path: str | None):
        self.fh = None
        self.pending = b""
        self.error = ""
        try:
            self.fh = open(path, "wb", buffering=LOG_BUFFER) if path else None
        except OSError as exc:
            self.error = f"{exc.strerror or exc}"

    def write(self, data: bytes) -> None:
        """Log one chunk of output (redacted)."""
        if self.fh is None or self.error:
            return
        try:
            self._write(data)
            self.fh.flush()
        except (OSError, ValueError) as exc:
            self.error = f"{getattr(exc, 'strerror', None) or exc}"

    def _write(self, data: bytes) -> None:
        start = 0
        if self.pending:
            eol = first_eol(data)
            if eol == -1:
                self._hold(self.pending + data)
                return
            self.fh.write(redact_bytes(self.pending + data[:eol + 1]))
            self.pending = b""
            start = eol + 1
        end = last_eol(data, start) + 1
        if end <= start:  # no line end in what is left
            self._hold(data[start:] if start else data)
            return
        if may_hold_secret(data, start, end):
            self.fh.write(redact_bytes(data[start:end]))
        else:
            self.fh.write(memoryview(data)[start:end])  # no copy: the common case of a flood
        if end < len(data):
            self._hold(data[end:])

    def _hold(self, partial: bytes) -> None:
        while len(partial) >= MAX_LINE:
            cut = forced_cut(partial)
            self.fh.write(redact_bytes(partial[:cut]))
            partial = partial[cut:]
        self.pending = partial

    def close(self) -> None:
        """Write the last partial line and close the file."""
        if self.fh is None:
            return
        try:
            if self.pending and not self.error:
                self.fh.write(redact_bytes(self.pending))
            self.fh.close()
        except (OSError, ValueError) as exc:
            self.error = self.error or f"{getattr(exc, 'strerror', None) or exc}"
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
