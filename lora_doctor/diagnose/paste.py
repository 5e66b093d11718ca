"""Undo what pasting did to a log, line by line, before it is parsed: the one normalisation stage
for text a person copied from somewhere else.

- markdown: `>` quotes, code fences, a line wrapped in `*…*`, `**…**` or backticks, HTML entities,
  `<module>` eaten as an HTML tag;
- front ends: timestamps and levels in front of every line (`[2024-05-01 12:00:00] [INFO] `,
  kohya_ss GUI's `12:45:53-084486 ERROR    `, Python logging's `ERROR:root:`), rich's right-hand
  `file.py:NN` source column;
- machine-translated tracebacks: `回溯（最近一次调用）：`, `文件 “…”，第 642 行，在 <module>`, the
  chain lines, a full-width `：` after the exception type (Chinese, Japanese, Korean, French,
  German, Spanish, Portuguese, Italian, Russian);
- lines joined or wrapped by the paste: a frame glued to the source line before it, a line broken
  inside a tensor shape (`torch.Size([320,` / `768])`).

The parser gets two forms of each line: `scan`, what signatures' log regexes are searched in (the
line as printed, with its front-end prefix: signatures may name it), and `parse`, the line without
any prefix, for the traceback structure and exception lines.
"""

from __future__ import annotations

import html
import re

from lora_doctor.diagnose.notable import RANK_INDENTED_RE

# -- markdown ----------------------------------------------------------------------------------
_QUOTE = re.compile(r"^ {0,3}>(?: ?>)* ?")
_FENCE = re.compile(r"^\s*(?:```|~~~)[\w+\-. ]*\s*$")
_EMPHASIS = re.compile(r"^(\*\*?)(?=\S)([^*]*\S)\1\s*$")
_INLINE_CODE = re.compile(r"^\s*`([^`]+)`\s*$")
_ENTITY = re.compile(r"&(?:[a-zA-Z]{2,6}|#\d{2,5}|#x[0-9a-fA-F]{2,4});")
_EATEN_MODULE = re.compile(r'^(\s*File "[^"]*", line \d+, in)\s*$')

# -- front-end prefixes --------------------------------------------------------------------------
_TS = (r"(?:\d{4}[-/.]\d{1,2}[-/.]\d{1,2}[ T_]\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?"
       r"|\d{1,2}:\d{2}:\d{2}(?:[-.,]\d+)?)")
_LEVELS = r"(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL|TRACE|NOTICE|SUCCESS)"
_FRONT = re.compile(
    rf"^(?:"
    rf"(?:\[(?!(?:rank|default)\d+\])(?:{_TS}|{_LEVELS}|(?=[\w.\-]*[A-Za-z])[\w.\-]{{1,24}}(?:\s+{_TS})?|{_TS}\s+{_LEVELS})\]\s*(?:[-|:]\s*)?)+"  # [12:00:00] [INFO] [gui]
    rf"|{_TS}\s*(?:[-|]\s*)?(?:[\w.\-]+\s+-\s+)?(?:{_LEVELS}\b\s*(?:[-|:]\s*)?)?"  # 12:00:00-123 INFO / 2024-… - name - INFO -
    rf"|\s{{4,}}{_LEVELS}\s+"  # rich's record of the same second: the level under the previous time
    rf"|{_LEVELS}:[\w.<>\-]*:"  # logging.basicConfig: ERROR:root:
    rf")")
_SOURCE_COLUMN = re.compile(r"\s{2,}\(?[\w.\-]+\.py:\d+\)?\s*")  # at the last double space
_RANK_AFTER = re.compile(r"^\[(?:rank|default)\d+\]:")

# -- translated tracebacks ---------------------------------------------------------------------
_TB_WORDS = (r"Traceback|回溯|追溯|跟踪|追蹤|トレースバック|역추적|트레이스백|Rastreo|Rastreamento|Retraçage|Traçage|"
             r"Rückverfolgung|Rückverfolgen|Трассировка|Отслеживание|Обратная трассировка")
_LOC_TB = re.compile(rf"(?:{_TB_WORDS})\s*[(（][^)）\n]{{0,60}}[)）]\s*[:：]?\s*$", re.IGNORECASE)
_LOC_FRAME = re.compile(
    r"^(?P<indent>\s*)(?:File|Fichier|Datei|Archivo|Arquivo|文件|檔案|档案|ファイル|파일|Файл)\s*"
    r"[\"“”„«「『']\s*(?P<file>[^\"“”„«»「」『』'\n]+?)\s*[\"“”»」』']\s*[,，、]?\s*"
    r"(?:(?:line|ligne|Zeile|línea|linea|linha|riga|строка|行|第)\s*)?(?P<line>\d+)\s*(?:行目?|행|번째 줄|줄)?"
    r"\s*(?:[,，、]\s*(?:(?:in|dans|en|em|в|在|中)\s*)?(?P<func>.*?))?\s*(?:内|中|에서|で)?\s*$",
    re.IGNORECASE)
_CHAIN_DURING = re.compile(r"(?:处理|處理|処理|traitement|Behandlung|manejo|tratamento|gestione|обработки|처리)"
                           r".{0,40}(?:异常|異常|例外|exception|Ausnahme|excepción|exceção|eccezione|исключени|예외)",
                           re.IGNORECASE)
_CHAIN_CAUSE = re.compile(r"(?:直接|directe|direkte|directa|direta|diretta|непосредственн|직접)", re.IGNORECASE)
_EXC_WORD = re.compile(r"异常|異常|例外|exception|Ausnahme|excepción|exceção|eccezione|исключени|예외", re.IGNORECASE)
_FULLWIDTH_EXC = re.compile(r"^(\s*(?:[A-Za-z_][A-Za-z0-9_]*\.)*[A-Za-z_][A-Za-z0-9_]*)\s*：\s*")  # an ASCII type
# what a web page or a word processor made of plain characters: typographic quotes, no-break and
# zero-width spaces
_CHARS = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u201c": '"', "\u201d": '"',
                        "\u201e": '"', "\u201f": '"', "\u00a0": " ", "\u2007": " ", "\u202f": " ", "\u2009": " ",
                        "\u200b": None, "\ufeff": None})
_LATIN_FRAME = re.compile(r"\s*(?:Fichier|Datei|Archivo|Arquivo|File)\s*\"[^\"]*\"\s*,\s*(?:ligne|Zeile|linha|riga)\b")

# -- joined and wrapped lines --------------------------------------------------------------------
_GLUED_FRAME = re.compile(r'(?<=\S)\s+(?=File "[^"]+", line \d+)')
_WRAP_END = frozenset(",([0123456789")
_WRAP_NEXT = re.compile(r"^\s*[\d\])]")


def _unclosed(line: str) -> bool:
    return line.count("[") + line.count("(") > line.count("]") + line.count(")")


def translate_line(line: str) -> str:
    """A machine-translated traceback line -> Python's English form; other lines unchanged."""
    if len(line) > 400:
        return line
    m = _LOC_FRAME.match(line)
    if m and not line.lstrip().startswith('File "'):
        func = (m.group("func") or "").strip()
        return f'{m.group("indent")}File "{m.group("file")}", line {m.group("line")}' + (f", in {func}" if func else "")
    if _LOC_TB.search(line) and not line.rstrip().endswith("(most recent call last):"):
        return "Traceback (most recent call last):"
    stripped = line.strip()
    if len(stripped) < 160 and stripped[-1:] in ":：" and _EXC_WORD.search(stripped):
        if _CHAIN_CAUSE.search(stripped):
            return "The above exception was the direct cause of the following exception:"
        if _CHAIN_DURING.search(stripped):
            return "During handling of the above exception, another exception occurred:"
    if "：" in line:
        return _FULLWIDTH_EXC.sub(r"\1: ", line, count=1)
    return line


def clean_markdown(line: str) -> str | None:
    """A line without markdown's quote marker, emphasis or inline-code wrapping and HTML entities;
    None for a code-fence line."""
    c = line[:1]
    if c in " >" and c and ">" in line[:4] and (m := _QUOTE.match(line)):
        line = line[m.end():]
        c = line[:1]
    if c in "`~ " and c and ("```" in line or "~~~" in line) and _FENCE.match(line):
        return None
    if c == "*" and (m := _EMPHASIS.match(line)):
        line = m.group(2)
    elif c in "` " and c and "`" in line and (m := _INLINE_CODE.match(line)):
        line = m.group(1)
    if "&" in line and ";" in line and _ENTITY.search(line):
        line = html.unescape(line)
    return line


def split_front(line: str) -> tuple[bool, str]:
    """(a front end's timestamp / level prefix was there, the line without it and without rich's
    source column)."""
    prefixed = False
    c = line[:1]
    if c and (c.isdigit() or c in "[ \t" or c in "DIWECFTNS"):
        m = _FRONT.match(line)
        if m and m.end():
            line, prefixed = line[m.end():], True
    if line[-1:] in "0123456789)" and ".py:" in line:
        cut = line.rstrip().rfind("  ")
        if cut > 0 and _SOURCE_COLUMN.fullmatch(line, cut):
            line = line[:cut].rstrip()
    return prefixed, line


def strip_front(line: str) -> str:
    """The line without a front end's prefix and rich's source column."""
    return split_front(line)[1]


class PasteFixer:
    """Stateful (a line wrapped inside a tensor shape waits for its end): feed physical lines with
    `physical()`, then `flush()` at the end; turn each logical line into (scan, parse) with `logical()`."""

    def __init__(self):
        self.held: str | None = None

    # -- physical lines (before rich records are unfolded) ----------------------------------------
    def physical(self, line: str) -> list[str]:
        line = clean_markdown(line)
        if line is None:
            return self._release()
        if self.held is not None:
            held, self.held = self.held, None
            if not _WRAP_NEXT.match(line):
                return [held, *self._hold(line)]
            held = held.rstrip()
            line = held + (" " if held.endswith(",") else "") + line.strip()
        return self._hold(line)

    def _hold(self, line: str) -> list[str]:
        if ("Size(" in line or "shape" in line) and line.rstrip()[-1:] in _WRAP_END and _unclosed(line):
            self.held = line
            return []
        return [line]

    def _release(self) -> list[str]:
        held, self.held = self.held, None
        return [] if held is None else [held]

    def flush(self) -> list[str]:
        return self._release()

    # -- logical lines (rich records unfolded) ------------------------------------------------------
    def logical(self, line: str, parse: str | None = None) -> list[tuple[str, str, bool]]:
        """(scan, parse, prefixed) forms of a logical line; a line holding two (a frame glued to
        the source line before it) gives two. `parse`, when the caller knows it (a rich record's
        message), is the line without its prefix."""
        if not line.isascii():
            translated = translate_line(line.translate(_CHARS))
            if translated != line:
                line, parse = translated, None
        elif ('", ' in line and _LATIN_FRAME.match(line)) or "Aufruf" in line or "Ausnahme" in line:
            line, parse = translate_line(line), None
        if parse is not None:
            return [(line, parse, True)]
        if 'File "' in line and not line.lstrip().startswith('File "') and (m := _GLUED_FRAME.search(line)) \
                and split_front(RANK_INDENTED_RE.sub("", line[:m.start()]))[1].strip():
            return [*self.logical(line[:m.start()]), *self.logical(line[m.end():])]
        prefixed, parse = split_front(line)
        if parse[-1:] in "n " and parse.rstrip().endswith(", in") and (m := _EATEN_MODULE.match(parse)):
            parse = m.group(1) + " <module>"
        return [(line, parse, prefixed)]
