"""Caption files as sd-scripts reads them (sd-scripts library/train_util.py, read_caption and the subset constructors), plus a token estimate and a tag table.

sd-scripts opens `<image stem><caption_extension>` with encoding="utf-8" (no BOM stripping),
asserts the file has at least one line, and uses only the first line (stripped) unless
enable_wildcard.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass

CAPTION_READ_LIMIT = 1 << 16  # captions are short; a huge file is read only this far
CLIP_WINDOW = 75  # 77 positions minus the start and end tokens
OTHER_CAPTION_EXTENSIONS = (".txt", ".caption", ".tags", ".TXT", ".cap")


@dataclass
class Caption:
    """The caption of one image: status is ok / missing / empty / blank / not_utf8 / unreadable."""

    path: str
    status: str
    text: str = ""  # what sd-scripts would use
    bom: bool = False
    encoding: str = ""  # the likely encoding of a not-UTF-8 file
    extra_lines: int = 0  # non-empty lines after the first (ignored without enable_wildcard)
    tokens: int = 0  # estimated CLIP tokens
    error: str = ""


def caption_path(image_path: str, extension: str) -> str:
    return os.path.splitext(image_path)[0] + extension


def _decodes(data: bytes, encoding: str) -> str | None:
    try:
        return data.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        return None


def guess_encoding(data: bytes) -> str:
    """The legacy encoding these bytes most likely are (no statistics: script-specific tells)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    high = sum(1 for b in data if b >= 0x80)
    if high <= len(data) * 0.3:  # mostly ASCII: accented Western text
        return "cp1252"
    text = _decodes(data, "cp932")
    if text and re.search("[\u3040-\u30ff]", text):
        return "cp932"  # hiragana/katakana come only out of Japanese text
    for encoding in ("gbk", "big5", "cp949", "cp932"):  # GBK first: the commonest after Shift-JIS
        if _decodes(data, encoding):
            return encoding
    return "cp1252"


def read_caption(image_path: str, extension: str, wildcard: bool = False) -> Caption:
    path = caption_path(image_path, extension)
    try:
        with open(path, "rb") as fh:
            data = fh.read(CAPTION_READ_LIMIT)
    except FileNotFoundError:
        return Caption(path, "missing")
    except IsADirectoryError:
        return Caption(path, "unreadable", error="is a folder")
    except OSError as exc:
        return Caption(path, "unreadable", error=exc.strerror or str(exc))
    if not data:
        return Caption(path, "empty")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return Caption(path, "not_utf8", encoding=guess_encoding(data))
    bom = text.startswith("\ufeff")
    lines = text.splitlines()
    nonempty = [line.strip() for line in lines if line.strip()]
    used = "\n".join(nonempty) if wildcard else (lines[0].strip() if lines else "")
    cap = Caption(path, "ok" if used.strip("\ufeff ") else "blank", used, bom,
                  extra_lines=0 if wildcard else max(0, len(nonempty) - (1 if lines and lines[0].strip() else 0)))
    cap.tokens = estimate_tokens(used.lstrip("\ufeff"))
    return cap


_WORD = re.compile(r"[A-Za-z]+|[0-9]|[^\sA-Za-z0-9]")


def estimate_tokens(text: str) -> int:
    """A rough CLIP BPE token count without the vocabulary (no network): common words are one
    token, words over 12 letters one more per ~6 letters, digits and punctuation one each, non-ASCII about one
    per 1–3 characters. Good to ±20 % on tag-style captions."""
    count = 0
    for piece in _WORD.findall(text.lower()):
        if piece.isascii() and piece.isalpha():
            count += 1 + max(0, len(piece) - 7) // 6
        elif piece.isascii():
            count += 1
        else:
            count += max(1, (len(piece.encode("utf-8")) + 2) // 3)
    return count


def tags(text: str, separator: str = ",") -> list[str]:
    return [t.strip() for t in text.split(separator) if t.strip()]


def _norm(tag: str) -> str:
    t = re.sub(r"[\s_\-]+", " ", tag.lower()).strip().strip("\ufeff")
    return t[:-1] if t.endswith("s") and len(t) > 3 else t


@dataclass
class TagTable:
    captions: int
    counts: Counter
    in_every: list[str]
    near_duplicates: list[list[str]]

    def top(self, n: int = 10) -> list[tuple[str, int]]:
        return self.counts.most_common(n)


def tag_table(texts: list[str], separator: str = ",", near_limit: int = 300) -> TagTable:
    """Most frequent tags, tags in every caption (the trigger word), near-duplicate spellings."""
    counts: Counter = Counter()
    for text in texts:
        counts.update(list(dict.fromkeys(tags(text, separator))))
    in_every = [t for t, n in counts.most_common() if n == len(texts)] if texts else []
    groups: dict[str, list[str]] = {}
    for tag, _ in counts.most_common(near_limit):
        groups.setdefault(_norm(tag), []).append(tag)
    near = [sorted(g) for g in groups.values() if len(g) > 1]
    return TagTable(len(texts), counts, in_every, near)
