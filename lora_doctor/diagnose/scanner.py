"""Search a log for many regexes in one pass, with a time budget for regexes we did not write.

`LineScanner` finds the first line matching each regex over a stream of text chunks. A regex also
matches in another letter case (forums lower-case pastes: `cuda out of memory. tried to allocate`)
when it does not in the case it was written in: case-insensitively, searched only where the chunk
holds the regex's words in another case, so a gigabyte log printed by the program itself costs
nothing more.
"""

from __future__ import annotations

import re
import signal as _signal
import threading


# -- a time budget for regexes we did not write --------------------------------------------
class RegexTimeout(Exception):
    pass


class RegexGuard:
    """Bounds the time of each regex search (SIGALRM timer; main thread on POSIX only).

    A regex that overruns its budget is reported and skipped for the rest of the run; all overruns
    together may cost `total` seconds, after which each search gets only `floor` (60 slow regexes
    cost about 6 s, not 60; a regex of ours takes microseconds per line). Where no
    timer is available, the bounded input (capped lines and messages) and the load-time check
    for nested quantifiers are the protection.
    """

    def __init__(self, budget: float = 1.0, total: float = 3.0, floor: float = 0.05):
        self.budget = budget
        self.total = total  # what all overruns together may cost; after that every search gets `floor`
        self.floor = floor
        self.lost = 0.0
        self.timed_out: set[str] = set()
        self.enabled = (hasattr(_signal, "setitimer") and threading.current_thread() is threading.main_thread())
        self._active = False
        self._old = None

    def __enter__(self):
        if self.enabled:
            try:
                self._old = _signal.signal(_signal.SIGALRM, self._alarm)
                self._old_timer = _signal.getitimer(_signal.ITIMER_REAL)
            except (ValueError, OSError):
                self.enabled = False
        return self

    def __exit__(self, *exc):
        if self.enabled:
            _signal.setitimer(_signal.ITIMER_REAL, 0)
            _signal.signal(_signal.SIGALRM, self._old if self._old is not None else _signal.SIG_DFL)
            if self._old_timer and self._old_timer[0] > 0:
                _signal.setitimer(_signal.ITIMER_REAL, *self._old_timer)
        return False

    def _alarm(self, signum, frame):
        if self._active:
            raise RegexTimeout()

    def search(self, rx: re.Pattern, text: str):
        if rx.pattern in self.timed_out:
            return None
        if not self.enabled:
            return rx.search(text)
        self._active = True
        timer = min(self.budget, max(self.total - self.lost, self.floor))
        _signal.setitimer(_signal.ITIMER_REAL, timer)
        try:
            return rx.search(text)
        except RegexTimeout:
            self.timed_out.add(rx.pattern)
            self.lost += timer
            return None
        finally:
            self._active = False
            _signal.setitimer(_signal.ITIMER_REAL, 0)


# -- the words a regex needs ----------------------------------------------------------------------
_TOKEN = re.compile(r"[A-Za-z0-9_]{4,}")
# runs of kana, CJK ideographs, Hangul and Cyrillic: sd-scripts' Japanese halves and localized messages
_SCRIPT_CHARS = "\u0400-\u04ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af"
_SCRIPT_RUN = re.compile(f"[{_SCRIPT_CHARS}]{{2,}}")
_SCRIPT_PIECE = re.compile(f"[{_SCRIPT_CHARS}]{{2,}}")


def required_words(rx: re.Pattern) -> tuple[frozenset[str], ...] | None:
    """What every match of `rx` contains: groups of word pieces (ASCII words of 4+ characters, or
    runs of 2+ kana/CJK/Hangul/Cyrillic characters), one piece of each group at least, as written
    (in any letter case when the regex ignores case). None when nothing can be proven (the regex is
    then searched in every chunk)."""
    try:
        try:
            from re import _parser as sre_parse
        except ImportError:  # pragma: no cover
            import sre_parse
        parsed = sre_parse.parse(rx.pattern, rx.flags)
    except Exception:
        return None
    return _pieces(list(parsed)) or None


def _pieces(items) -> tuple[frozenset[str], ...]:
    """Required groups of a sequence: each literal word piece is required on its own; a top-level
    alternation requires one piece of any branch."""
    if len(items) == 1 and str(items[0][0]) == "BRANCH":
        per_branch = [_pieces(list(branch)) for branch in items[0][1][1]]
        if not all(per_branch):
            return ()
        return (frozenset(max((w for g in groups for w in g), key=len) for groups in per_branch),)
    groups: list[frozenset[str]] = []
    run: list[str] = []

    def flush():
        text = "".join(run)
        groups.extend(frozenset([m.group(0)]) for m in _TOKEN.finditer(text))
        if not text.isascii():
            groups.extend(frozenset([m.group(0)]) for m in _SCRIPT_PIECE.finditer(text))
        run.clear()

    for op, av in items:
        if str(op) == "LITERAL":
            run.append(chr(av))
            continue
        flush()
        if str(op) == "SUBPATTERN":
            groups.extend(_pieces(list(av[-1])))
    flush()
    return tuple(groups)


def _has(need, words: str) -> bool:
    return all(any(w in words for w in group) for group in need)


def locator(rx: re.Pattern) -> re.Pattern:
    """A regex that finds, anywhere in a line, every line `rx` matches at a message's start: a
    message regex anchored with `^` (also in each alternative, `(?:^…)|(?:^…)`) also finds the
    message after a prefix it does not know (a front end's timestamp, `Error:`). Callers confirm
    the match on the message itself."""
    pattern = rx.pattern
    loose = (pattern[1:] if pattern.startswith("^") else pattern).replace("(?:^", "(?:")
    if loose == pattern:
        return rx
    try:
        return re.compile(loose, rx.flags)
    except re.error:
        return rx


class LineScanner:
    """Finds the first line matching each log regex, over a stream of text chunks (one pass).

    On big chunks a regex is searched only when the chunk's vocabulary holds one of its required
    word pieces (one tokenizing pass instead of one pass per regex). A regex written
    case-sensitively that does not match is tried again ignoring case where the chunk holds its
    words only in another case (on small chunks, also when it names no word)."""

    FILTER_FROM = 256 << 10  # characters of a chunk from which the word filter pays off
    numbered = True  # scan() takes the number of the chunk's first line

    def __init__(self, patterns: list[re.Pattern], guard: RegexGuard | None = None):
        self.patterns = list(dict.fromkeys(patterns))
        self.found: dict[tuple[str, int], tuple[str, dict]] = {}
        self.line_nos: dict[tuple[str, int], int] = {}
        self.guard = guard or RegexGuard()
        self._pending = list(self.patterns)
        self._required: dict[int, tuple | None] = {}
        self._folded: dict[int, re.Pattern] = {}

    def _need(self, rx: re.Pattern):
        """(pieces as written, pieces in lower case) or (None, None)."""
        key = id(rx)
        if key not in self._required:
            need = required_words(rx)
            lower = None if need is None else tuple(frozenset(w.lower() for w in g) for g in need)
            self._required[key] = (None if rx.flags & re.IGNORECASE else need, lower)
        return self._required[key]

    def _fold(self, rx: re.Pattern) -> re.Pattern | None:
        """The case-insensitive twin of a case-sensitive regex."""
        if rx.flags & re.IGNORECASE:
            return None
        key = id(rx)
        if key not in self._folded:
            try:
                self._folded[key] = re.compile(rx.pattern, rx.flags | re.IGNORECASE)
            except re.error:  # pragma: no cover - it compiled without the flag
                self._folded[key] = None
        return self._folded[key]

    def scan(self, text: str, first_line: int | None = None) -> None:
        """Search one chunk of whole lines; `first_line` is the number of its first line."""
        if not self._pending:
            return
        still = []
        big = len(text) >= self.FILTER_FROM
        exact = lower = None
        for rx in self._pending:
            need, need_lower = self._need(rx)
            if need_lower is not None or big:
                if exact is None:  # the chunk's vocabulary, small
                    words = set(_TOKEN.findall(text))
                    if not text.isascii():
                        words.update(_SCRIPT_RUN.findall(text))
                    exact = "\n".join(words)
                    lower = exact.lower()
                if need_lower is not None and not _has(need_lower, lower):
                    still.append(rx)
                    continue
            m = self.guard.search(rx, text)
            if m is None and not (rx.flags & re.IGNORECASE):
                # another letter case: on a big chunk only where its words are there in another case
                if not big or (need is not None and not _has(need, exact)):
                    folded = self._fold(rx)
                    m = self.guard.search(folded, text) if folded is not None else None
            if m is None:
                still.append(rx)
                continue
            start = text.rfind("\n", 0, m.start()) + 1
            stop = text.find("\n", m.end())
            line = text[start:stop if stop >= 0 else len(text)]
            groups = {k: v for k, v in m.groupdict().items() if v is not None}
            key = (rx.pattern, rx.flags)
            self.found[key] = (line[:4096], groups)
            if first_line is not None:
                self.line_nos[key] = first_line + text.count("\n", 0, start)
        self._pending = still

    def hit(self, rx: re.Pattern) -> tuple[str, dict] | None:
        return self.found.get((rx.pattern, rx.flags))

    def line_no(self, rx: re.Pattern) -> int | None:
        """The number of the line `hit(rx)` found (when the chunks were numbered)."""
        return self.line_nos.get((rx.pattern, rx.flags))
