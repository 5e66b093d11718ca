"""Explain sd-scripts' own error messages: which check in sd-scripts printed them, on which options.

An explanation is not a diagnosis: it names no cause. It says what sd-scripts checked (in words
generated from the code, never the code itself), the options that check reads, where it is
(`library/train_util.py:4833 in get_optimizer`) and in which sd-scripts versions the message exists.

Matching (`explain_parsed`, `explain_lines`, `explain_text`) finds catalogued messages in a log —
any case, inside markdown quotes or backticks, or only the English or only the Japanese half of
sd-scripts' "English / 日本語" messages. Each message has a literal anchor; a log is searched for
anchors with plain substring checks, and a message's regex runs only where its anchor is. The
catalogue and a user's checkout are read by `lora_doctor.diagnose.sdscripts_source`.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from lora_doctor.diagnose.sdscripts_source import CJK_GAP, Ph, extract_messages, halves, parse_template, pattern_of

CATALOGUE = "sdscripts_messages.json"
MAX_EXPLANATIONS = 5
MIN_ANCHOR = 8  # characters of literal text a message (or half) needs to be found in a log


# Messages a user's command, data or environment cannot cause, left out of the share that must name a cause: model internals,
# the inference pipeline, Intel's fp16 scaler, file-format parsers, and "this is a bug" asserts.
INTERNAL_FILES = ("library/chroma_models.py", "library/custom_offloading_utils.py", "library/flux_models.py",
                   "library/ipex/", "library/jpeg_xl_util.py", "library/lpw_stable_diffusion.py",
                   "library/original_unet.py", "library/sdxl_original_control_net.py", "library/sai_model_spec.py",
                   "library/utils.py:step", "library/strategy_base.py:set_strategy", "library/model_util.py",
                   "library/deepspeed_utils.py:__", "library/safetensors_utils.py:validate_metadata")
INTERNAL_TEXT = re.compile(r"internal error|should be a bug|seems to be a bug|must be same in a batch|duplicated \w+ "
                            r"name|apply_unet must be True|mask is None|not implemented correctly|not supported yet|"
                            r"not found in conversion map", re.IGNORECASE)

def user_facing(entry: dict) -> bool:
    """Whether a catalogued message is one a user can cause (not a model internal or a "this is a bug" assert)."""
    return not (f"{entry['file']}:{entry['function']}".startswith(INTERNAL_FILES)
                or INTERNAL_TEXT.search(entry.get("message") or ""))


# -- the catalogue -----------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def catalogue() -> dict:
    """The generated catalogue (lora_doctor/data/sdscripts_messages.json), loaded once."""
    from importlib import resources

    try:
        text = resources.files("lora_doctor.data").joinpath(CATALOGUE).read_text("utf-8")
        data = json.loads(text)
    except (OSError, ValueError, ModuleNotFoundError):
        return {"versions": [], "messages": []}
    data.setdefault("messages", [])
    return data


def versions_text(entry: dict) -> str:
    first, last = entry.get("first", ""), entry.get("last", "")
    if not first:
        return ""
    if first == last:
        return "main only (unreleased)" if first == "main" else first
    return f"{first}–{last}"


_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!<>|~])")
_MD_QUOTE = re.compile(r"^\s*(?:>\s*)+")
_WS = re.compile(r"\s+")


def normalize(text: str) -> str:
    """A log line as messages are compared: lower case, markdown quotes/backticks/escapes and
    emphasis gone, whitespace runs as one space, no space between CJK characters."""
    text = _MD_QUOTE.sub("", text.lower())
    text = _MD_ESCAPE.sub(r"\1", text).replace("`", "").replace("**", "")
    text = _WS.sub(" ", text).strip()
    return CJK_GAP.sub("", text) if " " in text else text


def _normalize_literal(text: str) -> str:
    text = text.lower().replace("`", "").replace("**", "")
    return CJK_GAP.sub("", _WS.sub(" ", text))


def _ascii_word(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "_")


class _Variant:
    __slots__ = ("entry", "which", "parts", "anchor", "_rx", "open_start", "open_end", "multiline")

    def __init__(self, entry: dict, which: str, parts: list):
        self.entry, self.which, self.parts = entry, which, parts
        literals = [_normalize_literal(p).strip() for p in parts if not isinstance(p, Ph)]
        self.anchor = max(literals, key=len) if literals else ""
        self._rx = None
        self.open_start = bool(parts) and isinstance(parts[0], Ph)  # a value may run into the text around
        self.open_end = bool(parts) and isinstance(parts[-1], Ph)
        self.multiline = any("\n" in p.strip() for p in parts if not isinstance(p, Ph))

    def search(self, text: str):
        """The first match that does not start or end inside a word ("error: x" is not in "KeyError: x")."""
        for m in self.rx.finditer(text):
            a, b = m.start(), m.end()
            if not self.open_start and 0 < a < len(text) and _ascii_word(text[a]) and _ascii_word(text[a - 1]):
                continue
            if not self.open_end and 0 < b < len(text) and _ascii_word(text[b - 1]) and _ascii_word(text[b]):
                continue
            return m
        return None

    @property
    def rx(self) -> re.Pattern:
        if self._rx is None:
            self._rx = re.compile(pattern_of(self.parts, lambda text: re.escape(_normalize_literal(text))))
        return self._rx


class _Index:
    """Anchors of every catalogued message (and half); bare checks by (file name, function)."""

    def __init__(self, messages: list[dict]):
        self.by_anchor: dict[str, list[_Variant]] = {}
        self.bare: dict[tuple[str, str], list[dict]] = {}
        for entry in messages:
            if not entry.get("message"):
                key = (entry["file"].rsplit("/", 1)[-1], entry["function"])
                self.bare.setdefault(key, []).append(entry)
                continue
            parts = parse_template(entry["message"])
            variants = [_Variant(entry, "message", parts)]
            split = halves(parts)
            if split:
                variants += [_Variant(entry, "english", split[0]), _Variant(entry, "japanese", split[1])]
            for v in variants:
                if len(v.anchor) >= MIN_ANCHOR or (v.which == "message" and len(v.anchor) >= 5):
                    self.by_anchor.setdefault(v.anchor, []).append(v)


@functools.lru_cache(maxsize=1)
def _index() -> _Index:
    return _Index(catalogue()["messages"])


# -- matching ----------------------------------------------------------------------------------
def _find(texts: list[str], breaks_only: set[int] = frozenset()) -> list[tuple[int, int, int, _Variant, str]]:
    """(text index, start, end, variant, the log text) for every catalogued message found; in the
    texts `breaks_only` names (two lines joined) only a message with a line break counts."""
    index = _index()
    norms = [normalize(t) for t in texts]
    joined = "\n".join(norms)
    hits = []
    for anchor, variants in index.by_anchor.items():
        if anchor not in joined:
            continue
        for ti, text in enumerate(norms):
            if anchor not in text:
                continue
            for v in variants:
                if ti in breaks_only and not v.multiline:
                    continue
                m = v.search(text)
                if m is not None:
                    hits.append((ti, m.start(), m.end(), v, texts[ti]))
    return hits


def _best(hits) -> list[tuple[int, _Variant, str]]:
    """One hit per message; a hit inside a longer hit on the same text is dropped; the whole
    message beats a half; in log order."""
    hits = sorted(hits, key=lambda h: (h[0], -(h[2] - h[1]), h[3].which != "message"))
    kept: list = []
    for h in hits:
        ti, start, end, v, _text = h
        if any(k[0] == ti and k[1] <= start and end <= k[2] and (k[2] - k[1]) > (end - start) for k in kept):
            continue
        kept.append(h)
    seen: dict[str, tuple] = {}
    for h in kept:
        eid = h[3].entry["id"]
        if eid not in seen or (seen[eid][3].which != "message" and h[3].which == "message"):
            seen[eid] = h
    return [(h[0], h[3], h[4]) for h in sorted(seen.values(), key=lambda h: (h[0], h[1]))]


def _explanation(entry: dict, which: str, log_text: str | None, site: dict | None = None) -> dict:
    site = site or entry
    return {"id": entry["id"], "source": f"{site['file']}:{site['line']}", "function": site["function"],
            "condition": site["condition"], "options": list(site.get("options", ())),
            "versions": versions_text(entry), "message": entry.get("message") or "",
            "exception": entry.get("exception") or "", "matched": which, "from": "catalogue",
            "log": _redact((log_text or "").strip())[:300]}


def _redact(text: str) -> str:
    from lora_doctor.redact import redact_text

    return redact_text(text)


# A line of Python source a traceback shows (plain, or in a rich box): its message literals are not
# what was printed, and the lines around a frame may hold other checks' messages.
_SOURCE_LINE = re.compile(r"""^\s*(?:[│┃|]\s*\d+\s*[│┃|]|(?:raise|assert|elif|if)\b|[)\],]*\s*[rfbu]?["']|"""
                          r"""(?:\w+\.)*(?:error|critical|warning|info|print)\()""")


_FRAME_LINE = re.compile(r'^\s*File "|^\s*[\^~ ]+$')


def _printed(lines: list[str]) -> list[str]:
    """The lines without a traceback's source lines, except the statement that raised (the source
    line the exception line follows: sd-scripts' own `raise …(f"…")` says which check it was)."""
    out = []
    for i, t in enumerate(lines):
        if _SOURCE_LINE.match(t):
            after = next((x for x in lines[i + 1:] if x.strip() and not re.match(r"^\s*[\^~]+\s*$", x)), None)
            if after is not None and (_FRAME_LINE.match(after) or _SOURCE_LINE.match(after)):
                continue
        out.append(t)
    return out


_RECORD_SOURCE = re.compile(r"\s+[\w.\-]+\.py:\d+\s*$")  # rich's source column, at a folded record's end


def _texts(lines) -> tuple[list[str], set[int]]:
    """The log lines to search (each once), then each line joined to the next; and the joined
    texts in which only a message with a line break may be found (a record folded at the console
    width, its first line ending in rich's source column, is one message: any may be found in it)."""
    singles = list(dict.fromkeys(t[:4096] for t in lines if t and t.strip()))
    texts, breaks_only = list(singles), set()
    for a, b in zip(singles, singles[1:]):
        folded = _RECORD_SOURCE.search(a)
        if not folded:
            breaks_only.add(len(texts))
        texts.append(f"{a[:folded.start()] if folded else a} {b.strip()}")
    return texts, breaks_only


def explain_lines(lines, checkout: Path | None = None) -> list[dict]:
    """Explanations for catalogued sd-scripts messages among these log lines (best first)."""
    texts, breaks_only = _texts(_printed(list(lines)))
    out = [_explanation(v.entry, v.which, text) for _, v, text in _best(_find(texts, breaks_only))]
    return _checked(out[:MAX_EXPLANATIONS], checkout)


def explain_text(text: str, checkout: Path | None = None) -> list[dict]:
    """Explanations for a whole log held in memory (for a large log, prefer `explain_parsed`)."""
    return explain_lines(text.splitlines(), checkout)


def explain_parsed(parsed, checkout: Path | None = None) -> list[dict]:
    """Explanations for what the log parser kept of a log (bounded whatever the log's size): the
    failures' messages, the ERROR records, the lines around each failure and the log's last lines."""
    from lora_doctor.diagnose.logparse import chain

    lines: list[str] = []
    failures = parsed.ordered_failures()
    for top in failures:
        for f in reversed(chain(top)):
            message = " ".join(line.strip() for line in f.message.split("\n"))
            lines.append(f"{f.exception}: {message}" if f.exception else message)
    lines += list(parsed.errors)
    for top in failures:
        lines += _printed(parsed.excerpt(top))
    lines += _printed(list(parsed.tail))
    texts, breaks_only = _texts(lines)
    raised = [(normalize(f"{f.exception}: {f.message}"), _base(f.frames[-1].file))
              for top in failures for f in chain(top) if f.frames]
    found = []
    for _, v, text in _best(_find(texts, breaks_only)):
        site = _raising_site(v, raised)
        if site is not None:
            found.append(_explanation(v.entry, v.which, text, site or None))
    for top in failures:  # checks without a message: the bare exception raised in a known function
        for f in chain(top):
            if f.message.strip() or not f.frames:
                continue
            found += _bare(f, checkout)
    seen: set[str] = set()
    unique = [e for e in found if not (e["id"] in seen or seen.add(e["id"]))]
    return _checked(unique[:MAX_EXPLANATIONS], checkout)


def _base(path: str) -> str:
    return re.split(r"[\\/]", path)[-1]


def _raising_site(v: _Variant, raised: list[tuple[str, str]]) -> dict | None:
    """Where an exception with this message was raised, when the log's traceback shows it: the
    catalogued place in that file ({} when no traceback shows it), or None when the traceback
    shows another file (torch, for one, has messages sd-scripts copied)."""
    entry = v.entry
    if entry.get("kind") == "log":
        return {}
    files = [entry] + list(entry.get("also", ()))
    shown = [where for text, where in raised if v.search(text) is not None]
    if not shown:
        return {}
    for where in shown:
        site = next((s for s in files if _base(s["file"]) == where), None)
        if site is not None:
            return site
    return None


def _bare(failure, checkout: Path | None) -> list[dict]:
    frame = failure.frames[-1]
    name = _base(frame.file)
    entries = [e for e in _index().bare.get((name, frame.function), ())
               if e.get("exception") == failure.exception_name]
    if checkout is not None:
        mine = _checkout_bare(checkout, frame, failure.exception_name)
        if mine is not None:
            return [mine]
    if not entries or len(entries) > 3:
        return []
    return [_explanation(e, "location", f"{failure.exception} in {frame.function}") for e in entries]


# -- the user's checkout -----------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def _read_file(path: str, mtime: float) -> tuple[dict, ...]:
    try:
        source = Path(path).read_text("utf-8", errors="replace")
    except OSError:
        return ()
    rel = Path(path).name
    return tuple(extract_messages(source, rel))


def _sites(checkout: Path, relpath: str) -> list[dict]:
    path = checkout / relpath
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return []
    return [dict(s, file=relpath) for s in _read_file(str(path), mtime)]


def _from_checkout(explanation: dict, site: dict, checkout: Path) -> dict:
    out = dict(explanation)
    out.update(source=f"{site['file']}:{site['line']}", function=site["function"], condition=site["condition"],
               options=list(site["options"]), **{"from": "checkout", "checkout": str(checkout)})
    return out


def _checked(explanations: list[dict], checkout: Path | None) -> list[dict]:
    """Where the user's checkout is known, the condition and line as their copy has them."""
    if checkout is None:
        return explanations
    entries = {e["id"]: e for e in catalogue()["messages"]}
    out = []
    for x in explanations:
        if x.get("from") == "checkout":
            out.append(x)
            continue
        entry = entries.get(x["id"], {})
        files = [x["source"].rsplit(":", 1)[0], entry.get("file", "")] + [a["file"] for a in entry.get("also", ())]
        site = None
        for rel in dict.fromkeys(files):
            site = next((s for s in _sites(checkout, rel) if s["id"] == x["id"]), None)
            if site is not None:
                break
        out.append(_from_checkout(x, site, checkout) if site is not None else x)
    return out


def _checkout_bare(checkout: Path, frame, exception_name: str) -> dict | None:
    parts = re.split(r"[\\/]", frame.file)
    for depth in (2, 1):  # library/train_util.py, then train_network.py
        rel = "/".join(parts[-depth:])
        for s in _sites(checkout, rel):
            if s["line"] == frame.line and s["exception"] == exception_name:
                entry = {**s, "first": "", "last": ""}
                return _from_checkout(_explanation(entry, "location", f"{exception_name} in {frame.function}"),
                                      s, checkout)
    return None


def find_checkout(launch=None, failures=(), cwd: Path | None = None) -> Path | None:
    """The user's sd-scripts checkout: the command's script folder (or this folder, as
    `lora-doctor run` finds it), else a folder the log's own frames point to, when it exists here."""
    from lora_doctor.context import find_sd_scripts

    cwd = cwd or Path.cwd()
    try:
        found = find_sd_scripts(launch, None, cwd)
    except OSError:
        found = None
    if found is not None:
        return found
    from lora_doctor.diagnose.logparse import chain

    for top in failures:
        for f in chain(top):
            for fr in f.frames:
                parts = re.split(r"[\\/]", fr.file)
                if len(parts) < 3 or parts[-2] not in ("library", "networks"):
                    continue
                root = Path("/".join(parts[:-2]) or "/")
                try:
                    if (root / "library" / "train_util.py").is_file():
                        return root.resolve()
                except OSError:
                    continue
    return None


# -- on the terminal ---------------------------------------------------------------------------
def explanation_lines(explanations: list[dict], limit: int = 2) -> list[str]:
    """A few lines per explanation: what sd-scripts checked, on which options, where."""
    out: list[str] = []
    for x in explanations[:limit]:
        what = x.get("exception") or "an error it logs"
        out.append(f"sd-scripts' own check ({what}, {x['source']} in {x['function']}):")
        out.append(f"  it stops {x['condition']}")
        if x.get("options"):
            out.append("  options involved: " + " ".join("--" + o for o in x["options"]))
        where = "your checkout" if x.get("from") == "checkout" else (x.get("versions") or "")
        if where:
            out.append(f"  (as in {where})" if x.get("from") == "checkout" else f"  (sd-scripts {where})")
    return out


def explain_report(parsed, launch=None) -> list[dict]:
    """The explanations `lora-doctor diagnose` reports (never raises: an explanation is extra)."""
    try:
        failures = parsed.ordered_failures()
        return explain_parsed(parsed, find_checkout(launch, failures))
    except Exception:  # noqa: BLE001 - a broken catalogue or checkout must not cost the diagnosis
        return []
