"""Text output that never raises UnicodeEncodeError: ✓ on a cp1252 or ASCII console, a non-UTF-8
file name on any console."""

from __future__ import annotations

import codecs

ERRORS = "lora_doctor_ascii"
# What a console that cannot encode a character shows instead.
ASCII_FALLBACK = {"✓": "v", "✗": "x", "–": "-", "—": "-", "•": "*", "…": "...", "→": "->", "×": "x",
                  "·": "*", "≥": ">=", "≤": "<=", "‘": "'", "’": "'", "“": '"', "”": '"'}


def _fallback(exc: UnicodeError):
    if not isinstance(exc, UnicodeEncodeError):
        raise exc
    out = []
    for ch in exc.object[exc.start:exc.end]:
        if "\udc80" <= ch <= "\udcff":  # os.fsdecode's surrogateescape of a byte that is not UTF-8
            out.append(f"\\x{ord(ch) - 0xdc00:02x}")
        else:
            out.append(ASCII_FALLBACK.get(ch, "?"))
    return "".join(out), exc.end


codecs.register_error(ERRORS, _fallback)


def degrade_unencodable(*streams) -> None:
    """Make text streams write what their encoding cannot hold as its ASCII stand-in."""
    for stream in streams:
        if getattr(stream, "errors", None) in ("strict", "surrogateescape") and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors=ERRORS)
            except (ValueError, OSError):  # closed, or a stream that cannot change
                pass
