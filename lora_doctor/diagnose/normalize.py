"""Bytes of a log -> text chunks of whole lines, bounded, whatever the log's size.

- CRLF -> LF; of a line rewritten with `\\r` (tqdm in a terminal) the last segment is kept, plus the
  first one showing a NaN loss (spelled `nan`, as Python prints it: diagnose/notable.py);
- invalid UTF-8 is replaced, ANSI colour codes are dropped;
- runs of tqdm progress-bar lines collapse to their last line (plus the first one showing `nan`);
- a line is capped at MAX_LINE characters (an endless line keeps its last `\\r` segment or its start).

What a paste did to the text (markdown, front-end prefixes, translation) is undone later, line by
line (diagnose/paste.py).
"""

from __future__ import annotations

import re

from lora_doctor.diagnose.notable import ANSI_RE, LOSS_NAN_RE, PROGRESS_NAN_SPELLINGS, first_nan

CHUNK = 4 << 20  # bytes read at a time
MAX_LINE = 4096  # characters kept of one line

_CR_SEGMENTS = re.compile(rb"(?m)^[^\n]*\r(?=[^\n])")  # everything up to the last \r that has text after it
_PROGRESS_RUN = re.compile(r"(?m)(?:^[^\n|]{0,160}\d%\|[^\n]*(?:\n|\Z))+")
_PROGRESS_RUN_B = re.compile(_PROGRESS_RUN.pattern.encode(), re.MULTILINE)
_LOSS_NAN_B = re.compile(LOSS_NAN_RE.pattern.encode(), re.IGNORECASE)
_ANSI_B = re.compile(ANSI_RE.pattern.encode())


def normalize_bytes(data: bytes) -> str:
    """One block of whole lines, normalized (see the module's docstring)."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
        if b"\r" in data:
            keep = first_nan(data, spellings=PROGRESS_NAN_SPELLINGS) >= 0
            data = _CR_SEGMENTS.sub(_keep_nan_segment if keep else b"", data).replace(b"\r", b"")
    if b"\x1b" in data:  # colour codes first, so they cannot hide a progress bar
        text = ANSI_RE.sub("", data.decode("utf-8", "replace"))
        return _PROGRESS_RUN.sub(_collapse_progress, text) if "%|" in text else text
    if b"%|" in data:  # on bytes: about twice as fast as on the decoded text
        data = _PROGRESS_RUN_B.sub(_collapse_progress, data)
    return data.decode("utf-8", "replace")


def _keep_nan_segment(m: re.Match) -> bytes:
    """The overwritten `\\r` segments of a line -> nothing, or the first one with a NaN loss (the
    live watcher saw it; the post-mortem must too)."""
    for segment in m.group(0).split(b"\r"):
        if _LOSS_NAN_B.search(_ANSI_B.sub(b"", segment) if b"\x1b" in segment else segment):
            return segment + b"\n"
    return b""


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
    nan = first_nan(body, 0, last_nl, spellings=PROGRESS_NAN_SPELLINGS)
    if nan >= 0:
        start = body.rfind(nl, 0, nan) + 1
        stop = body.find(nl, nan)
        first_nan_line = body[start:stop]
        if first_nan_line != keep:
            keep = first_nan_line + nl + keep
    return keep + (nl if end else nl[:0])


def utf16_codec(head: bytes) -> str | None:
    """The codec of UTF-16 text (what PowerShell 5.1's `>` writes): by its BOM, or by ASCII
    interleaved with NULs; None for anything else."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    sample = head[:4096]
    if len(sample) < 8:
        return None
    even, odd = sample[0::2], sample[1::2]
    if odd.count(0) >= 0.9 * len(odd) and even.count(0) <= 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) >= 0.9 * len(even) and odd.count(0) <= 0.1 * len(odd):
        return "utf-16-be"
    return None


def iter_chunks(stream, chunk_size: int = CHUNK):
    """Normalized text chunks of whole lines from a binary stream, with the number of bytes read
    for each; a line is at most MAX_LINE characters. UTF-16 text (a BOM, or NUL-interleaved
    ASCII) is decoded here, the one place where a log's bytes become text."""
    carry = b""
    skipping = False  # inside an over-long line whose start we already kept
    decoder, first = None, True
    while True:
        block = stream.read(chunk_size)
        if not block:
            break
        if isinstance(block, str):
            block = block.encode("utf-8", "surrogateescape")
        if first:
            first = False
            codec = utf16_codec(block)
            if codec:
                import codecs

                decoder = codecs.getincrementaldecoder(codec)("replace")
        if decoder is not None:
            block = decoder.decode(block).encode("utf-8", "surrogateescape")
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
                    yield normalize_bytes(carry[:MAX_LINE * 4]), len(block)
                    carry, skipping = b"", True
            continue
        carry = data[nl + 1:]
        yield normalize_bytes(data[:nl]), len(block)
    if carry:
        yield normalize_bytes(carry), 0
