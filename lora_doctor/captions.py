"""Caption files as sd-scripts reads them (FACTS §1.6), plus a token estimate and a tag table.

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
# Legacy encodings tried, in order, on a caption that is not UTF-8 (the likely culprit first).
ENCODINGS = ("cp932", "gbk", "big5", "cp949", "cp1251", "cp1252")


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


def guess_encoding(data: bytes) -> str:
    """The legacy encoding that decodes these bytes most plausibly."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    try:
        if re.search("[\u3040-\u30ff]", data.decode("cp932")):
            return "cp932"  # kana only come out of Japanese text
    except UnicodeDecodeError:
        pass
    best, best_score = "cp1252", -1.0
    for enc in ENCODINGS:
        try:
            text = data.decode(enc)
        except (UnicodeDecodeError, LookupError):
            continue
        # prefer decodings whose characters are letters/CJK rather than symbols
        letters = sum(1 for ch in text if ch.isalnum() or ch in " ,._-()")
        score = letters / max(1, len(text))
        if score > best_score + 1e-9:
            best, best_score = enc, score
    return best


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
    token, long words one per ~6 letters, digits and punctuation one each, non-ASCII about one
    per 1–3 characters. Good to ±20 % on tag-style captions."""
    count = 0
    for piece in _WORD.findall(text.lower()):
        if piece.isascii() and piece.isalpha():
            count += 1 + (len(piece) - 1) // 6
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
