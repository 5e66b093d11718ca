"""Load and validate the known-error database: `[[signature]]` tables in TOML files.

(The line scanner that searches a log for their regexes is diagnose/scanner.py.)

The format is documented in known_errors/README.md. A file that does not load, or a signature
that does not validate, costs only itself: it becomes a `SignatureError` (file, line, what to
fix) and everything else loads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from lora_doctor.tomlcompat import TOMLDecodeError, loads

ID_RE = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+$")
SEVERITIES = {"error": "error", "warn": "warn", "warning": "warn", "info": "info"}
TOP_KEYS = {"signature"}
SIG_KEYS = {"id", "title", "severity", "priority", "match", "why", "fix", "refs", "edit", "examples",
            "counter_examples"}
MATCH_KEYS = {"exception", "message", "log_all", "log_any", "log_none", "frame", "frame_when_shown", "exit_code",
              "also"}
ALSO_KEYS = {"exception", "message", "frame", "frame_when_shown", "exit_code"}  # another printed form of the cause
EDIT_KEYS = {"add", "remove", "set"}
EXAMPLE_KEYS = {"log", "command", "exit_code", "source", "note"}
DEFAULT_PRIORITY = 50
BUILTIN_PREFIX = "lora_doctor.plugins."
FLAGS = re.MULTILINE


@dataclass(frozen=True)
class SignatureError:
    """A problem with a signature file: where, and what to fix."""

    file: str
    line: int | None
    message: str
    signature_id: str = ""
    fatal: bool = True  # False: a warning; the signature still loads

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {'' if self.fatal else 'warning: '}{self.message}"


@dataclass
class Signature:
    """One known error, compiled."""

    id: str
    title: str
    severity: str = "error"
    priority: int = DEFAULT_PRIORITY
    exception: tuple[str, ...] = ()
    message: re.Pattern | None = None
    frame: re.Pattern | None = None
    frame_when_shown: re.Pattern | None = None  # like frame, but a failure pasted without frames passes
    log_all: tuple[re.Pattern, ...] = ()
    log_any: tuple[re.Pattern, ...] = ()
    log_none: tuple[re.Pattern, ...] = ()
    exit_code: tuple[int, ...] = ()
    why: str = ""
    fix: list[str] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)
    edit: dict = field(default_factory=dict)
    examples: list[dict] = field(default_factory=list)
    counter_examples: list[dict] = field(default_factory=list)
    file: str = ""
    line: int | None = None
    plugin: str = ""
    raw: dict = field(default_factory=dict)
    also: tuple[Signature, ...] = ()  # other forms of the same cause ([[signature.match.also]]), tried in order

    @property
    def forms(self) -> tuple[Signature, ...]:
        return (self, *self.also)

    @property
    def needs_failure(self) -> bool:
        """True when the signature constrains an exception (type, message or frame)."""
        return bool(self.exception or self.message or self.frame or self.frame_when_shown)

    @property
    def specificity(self) -> float:
        """How much the signature pins down: more (and longer) constraints rank higher."""
        score = 1.0 * bool(self.exception) + 1.0 * bool(self.frame) + 1.0 * bool(self.exit_code)
        score += 0.5 * bool(self.frame_when_shown)
        if self.message is not None:
            score += 2.0 + min(len(self.message.pattern), 120) / 120
        score += 1.5 * len(self.log_all) + 1.0 * bool(self.log_any) + 0.5 * len(self.log_none)
        return score

    @property
    def trusted(self) -> bool:
        return self.plugin.startswith(BUILTIN_PREFIX)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else self.file


@dataclass
class Database:
    """Every loaded signature plus the problems found while loading."""

    signatures: list[Signature] = field(default_factory=list)
    errors: list[SignatureError] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def get(self, sig_id: str) -> Signature | None:
        return next((s for s in self.signatures if s.id == sig_id), None)

    def log_patterns(self) -> list[re.Pattern]:
        """Every distinct line regex of every signature (scanned once over the log)."""
        seen: dict[tuple[str, int], re.Pattern] = {}
        for s in self.signatures:
            for rx in (*s.log_all, *s.log_any, *s.log_none):
                seen.setdefault((rx.pattern, rx.flags), rx)
        return list(seen.values())


# -- loading -------------------------------------------------------------------------------
MAX_FILE_BYTES = 1_000_000  # a signature file above this is refused (the biggest shipped one is ~60 kB)
BUILTIN_PLUGIN_PREFIX = "lora_doctor.plugins."  # sources registered by a builtin plugin: ids others cannot take
def iter_toml(path) -> list:
    """The .toml files of a file or folder (a Path or an importlib Traversable), sorted."""
    try:
        if path.is_dir():
            return sorted((p for p in path.iterdir() if p.name.endswith(".toml") and p.is_file()),
                          key=lambda p: p.name)
        return [path]
    except OSError:
        return [path]


def load_database(sources, *, extra_errors=(), strict: bool = False) -> Database:
    """Load (path, plugin) sources (files or folders); the first definition of an id wins.

    `strict` also checks the builtin signatures' regexes for nested quantifiers (as `errors test`
    does); user files are always checked."""
    db = Database()
    for plugin, message in extra_errors:
        db.errors.append(SignatureError(f"plugin {plugin}", None, f"registering signatures failed: {message}"))
    by_id: dict[str, Signature] = {}
    for path, plugin in sources:
        for file in iter_toml(path):
            db.files.append(str(file))
            sigs, errors = load_file(file, plugin, strict=strict)
            db.errors.extend(errors)
            for sig in sigs:
                first = by_id.get(sig.id)
                if first is not None:
                    same = first.plugin == sig.plugin
                    builtin = not same and first.plugin.startswith(BUILTIN_PLUGIN_PREFIX)
                    note = ("refused: a builtin signature has this id; give yours an id of your own family" if builtin
                            else "this one is ignored" if same else f"{first.where} overrides it")
                    db.errors.append(SignatureError(sig.file, sig.line, f"duplicate id '{sig.id}' (also defined at "
                                                    f"{first.where}); {note}", sig.id, fatal=same or builtin))
                    continue
                by_id[sig.id] = sig
                db.signatures.append(sig)
    return db


def load_file(path, plugin: str = "", *, strict: bool = True) -> tuple[list[Signature], list[SignatureError]]:
    """Parse and validate one TOML file."""
    name = str(path)
    try:
        size = path.stat().st_size
    except (OSError, AttributeError):  # an importlib resource without stat(): a shipped file
        size = 0
    if size > MAX_FILE_BYTES:
        return [], [SignatureError(name, None, f"{size / 1e6:.1f} MB is too big for a signature file (the limit is "
                                   f"{MAX_FILE_BYTES // 1_000_000} MB): split it, or keep only what it needs")]
    try:
        raw = path.read_bytes()
    except (OSError, AttributeError) as exc:
        return [], [SignatureError(name, None, f"cannot read the file: {exc}")]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [], [SignatureError(name, None, f"not UTF-8 ({exc.reason} at byte {exc.start}); save it as UTF-8")]
    try:
        data = loads(text)
    except TOMLDecodeError as exc:
        m = re.search(r"line (\d+)", str(exc))
        return [], [SignatureError(name, int(m.group(1)) if m else None, f"not valid TOML: {exc}")]
    errors: list[SignatureError] = []
    for key in data:
        if key not in TOP_KEYS:
            errors.append(SignatureError(name, _key_line(text, key, 0, None), f"unknown top-level key '{key}' "
                                         "(a file holds [[signature]] tables only)"))
    tables = data.get("signature", [])
    if not isinstance(tables, list):
        errors.append(SignatureError(name, _key_line(text, "signature", 0, None),
                                     "'signature' must be an array of tables: write [[signature]]"))
        return [], errors
    heads = [i + 1 for i, line in enumerate(text.splitlines()) if re.match(r"^\s*\[\[\s*signature\s*\]\]", line)]
    sigs: list[Signature] = []
    for index, table in enumerate(tables):
        start = heads[index] if index < len(heads) else None
        end = heads[index + 1] if index + 1 < len(heads) else None
        sig, problems = _build(table, name, text, start, end, plugin, strict)
        errors.extend(problems)
        if sig is not None:
            sigs.append(sig)
    return sigs, errors


def _key_line(text: str, key: str, start: int | None, end: int | None) -> int | None:
    """The line of `key = …` (or a `[...key]` table header) between lines start and end."""
    lines = text.splitlines()
    lo = (start or 1) - 1
    hi = (end - 1) if end else len(lines)
    rx = re.compile(rf"^\s*(?:{re.escape(key)}\s*=|\[+\s*signature\.{re.escape(key)}\s*\]+)")
    for i in range(lo, hi):
        if rx.match(lines[i]):
            return i + 1
    return start


def _strings(value, what: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError(f"'{what}' must be a string or a list of strings")


def _build(t, file: str, text: str, start, end, plugin: str, strict: bool = True):
    problems: list[SignatureError] = []
    sig_id = t.get("id") if isinstance(t, dict) else None
    sig_id = sig_id if isinstance(sig_id, str) else ""

    def err(key, message, fatal=True):
        problems.append(SignatureError(file, _key_line(text, key, start, end) if key else start,
                                       message, sig_id, fatal))

    if not isinstance(t, dict):
        err(None, "a [[signature]] entry must be a table")
        return None, problems
    t = _hoist(t, err)
    for key in t:
        if key not in SIG_KEYS:
            err(key, f"unknown key '{key}' (known: {', '.join(sorted(SIG_KEYS))})")
    if not sig_id:
        err(None, "missing 'id' (family.name, e.g. dataset.image_too_large_no_bucket)")
    elif not ID_RE.match(sig_id):
        err("id", f"id '{sig_id}' must look like family.name (lower case, digits, underscores)")
    title = t.get("title")
    if not isinstance(title, str) or not title.strip():
        err("title" if "title" in t else None, "missing 'title' (one line saying what went wrong)")
    severity = t.get("severity", "error")
    if severity not in SEVERITIES:
        err("severity", f"severity '{severity}' must be one of error, warn, info")
    priority = t.get("priority", DEFAULT_PRIORITY)
    if not isinstance(priority, int) or isinstance(priority, bool):
        err("priority", "priority must be an integer (higher wins; default 50)")
        priority = DEFAULT_PRIORITY
    fields: dict = {}
    for key in ("why",):
        if key in t and not isinstance(t[key], str):
            err(key, f"'{key}' must be a string")
    for key in ("fix", "refs"):
        if key in t:
            try:
                fields[key] = _strings(t[key], key)
            except ValueError as exc:
                err(key, str(exc))
    if not fields.get("fix"):
        err("fix" if "fix" in t else None, "missing 'fix' (the steps that solve it)")
    match = t.get("match")
    compiled: dict = {}
    if not isinstance(match, dict) or not match:
        err("match" if "match" in t else None, "missing [signature.match] (at least one of: "
            + ", ".join(sorted(MATCH_KEYS)) + ")")
    else:
        for key in match:
            if key not in MATCH_KEYS:
                err("match", f"unknown match key '{key}' (known: {', '.join(sorted(MATCH_KEYS))})")
        trusted = plugin.startswith(BUILTIN_PREFIX)
        compiled = _compile_match(match, err, trusted=trusted, check=strict or not trusted)
        if compiled is not None and not any(compiled.get(k) for k in ("exception", "message", "frame",
                                                                      "log_all", "log_any")):
            err("match", "the match needs a positive condition (exception, message, frame, log_all or log_any)")
    edit = t.get("edit", {})
    if not isinstance(edit, dict):
        err("edit", "[signature.edit] must be a table with add / remove / set")
        edit = {}
    for key in edit:
        if key not in EDIT_KEYS:
            err("edit", f"unknown edit key '{key}' (known: add, remove, set)")
    for key in ("add", "remove"):
        if key in edit:
            try:
                edit[key] = [v if v.startswith("-") else f"--{v}" for v in _strings(edit[key], f"edit.{key}")]
            except ValueError as exc:
                err("edit", str(exc))
    if "set" in edit and not isinstance(edit["set"], dict):
        err("edit", "edit.set must be a table: set = { option = \"value\" }")
    examples = {}
    for key in ("examples", "counter_examples"):
        value = t.get(key, [])
        if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
            err(key, f"'{key}' must be [[signature.{key}]] tables with a 'log' string")
            value = []
        for ex in value:
            for k in ex:
                if k not in EXAMPLE_KEYS:
                    err(key, f"unknown key '{k}' in {key} (known: {', '.join(sorted(EXAMPLE_KEYS))})")
            if not isinstance(ex.get("log"), str):
                err(key, f"each of {key} needs a 'log' string")
        examples[key] = [x for x in value if isinstance(x.get("log"), str)]
    if not examples["examples"] and sig_id:
        err("examples" if "examples" in t else None, "no [[signature.examples]]: add a real log excerpt "
            "that must match", fatal=False)
    also = _compile_also(match.get("also", []) if isinstance(match, dict) else [], err, plugin, strict)
    if any(p.fatal for p in problems) or compiled is None or also is None:
        return None, problems
    sig = Signature(id=sig_id, title=title.strip(), severity=SEVERITIES[severity], priority=priority,
                    why=(t.get("why") or "").strip(), fix=fields.get("fix", []), refs=fields.get("refs", []),
                    edit=edit, examples=examples["examples"], counter_examples=examples["counter_examples"],
                    file=file, line=start, plugin=plugin, raw=t, **compiled)
    bare = {"exception": (), "message": None, "frame": None, "frame_when_shown": None, "log_all": (), "log_any": (),
            "log_none": (), "exit_code": ()}
    sig.also = tuple(replace(sig, **{**bare, **form}) for form in also)
    return sig, problems


def _compile_also(tables, err, plugin: str, strict: bool) -> list[dict] | None:
    """`[[signature.match.also]]`: another way the same cause is printed (an older wording, another
    exception raised for it). Each form names the failure (exception/message/frame/exit_code); the
    log conditions stay with the main form. None when one does not compile."""
    if isinstance(tables, dict):
        tables = [tables]
    if not isinstance(tables, list) or not all(isinstance(x, dict) for x in tables):
        err("match", "match.also must be [[signature.match.also]] tables")
        return None
    out = []
    for form in tables:
        bad = sorted(set(form) - ALSO_KEYS)
        if bad:
            err("match", f"match.also: unknown key(s) {', '.join(bad)} (a form takes: {', '.join(sorted(ALSO_KEYS))})")
            return None
        compiled = _compile_match(form, err, trusted=plugin.startswith(BUILTIN_PREFIX),
                                  check=strict or not plugin.startswith(BUILTIN_PREFIX))
        if compiled is None:
            return None
        if not (compiled.get("exception") or compiled.get("message")):
            err("match", "each match.also form needs an exception or a message")
            return None
        out.append(compiled)
    return out


HOISTED = {"title", "severity", "priority", "why", "fix", "refs"}


def _hoist(t: dict, err) -> dict:
    """In TOML, `why = …` written after `[signature.match]` (as the README's layout invites) lands
    inside the match (or edit) table: read such keys as the signature's own."""
    t = dict(t)

    def lift(sub: dict, table: str) -> dict:
        sub = dict(sub)
        for key in [k for k in sub if k in HOISTED]:
            if key in t:
                err(table, f"'{key}' is given twice (once inside [signature.{table}])")
            else:
                t[key] = sub[key]
            del sub[key]
        return sub

    for table in ("match", "edit"):
        if isinstance(t.get(table), dict):
            t[table] = lift(t[table], table)
    also = t.get("match", {}).get("also") if isinstance(t.get("match"), dict) else None
    if isinstance(also, list) and also and isinstance(also[-1], dict):
        t["match"]["also"] = [*also[:-1], lift(also[-1], "match.also")]  # keys below the last form land in it
    return t


def _compile_match(match: dict, err, *, trusted: bool, check: bool = True) -> dict | None:
    out: dict = {}
    ok = True

    def compile_one(key, pattern):
        nonlocal ok
        try:
            rx = re.compile(pattern, FLAGS)
        except re.error as exc:
            err("match", f"match.{key}: regex {pattern!r} does not compile: {exc}")
            ok = False
            return None
        danger = nested_quantifier(pattern) if check else ""
        if danger:
            err("match", f"match.{key}: regex {pattern!r} nests quantifiers ({danger}) and can take forever on "
                "some lines; rewrite it without a repeated group of repeats", fatal=not trusted)
            ok = ok and trusted
        return rx

    try:
        if "exception" in match:
            out["exception"] = tuple(_strings(match["exception"], "match.exception"))
        for key in ("message", "frame", "frame_when_shown"):
            if key in match:
                patterns = _strings(match[key], f"match.{key}")
                pattern = patterns[0] if len(patterns) == 1 else "|".join(f"(?:{p})" for p in patterns)
                out[key] = compile_one(key, pattern)
        for key in ("log_all", "log_any", "log_none"):
            if key in match:
                out[key] = tuple(compile_one(key, p) for p in _strings(match[key], f"match.{key}"))
        if "exit_code" in match:
            codes = match["exit_code"]
            codes = [codes] if isinstance(codes, int) else codes
            if not isinstance(codes, list) or not all(isinstance(c, int) and not isinstance(c, bool) for c in codes):
                raise ValueError("'match.exit_code' must be an integer or a list of integers")
            out["exit_code"] = tuple(codes)
    except ValueError as exc:
        err("match", str(exc))
        return None
    if not ok or any(v is None for v in out.values()) or any(
            rx is None for k in ("log_all", "log_any", "log_none") for rx in out.get(k, ())):
        return None
    return out


def nested_quantifier(pattern: str) -> str:
    """'' when safe; else a short description of a repeat inside a repeat, e.g. `(a+)+`."""
    try:
        try:
            from re import _parser as sre_parse  # Python 3.11+
        except ImportError:  # pragma: no cover
            import sre_parse
        parsed = sre_parse.parse(pattern)
    except Exception:
        return ""
    repeats = {sre_parse.MAX_REPEAT, sre_parse.MIN_REPEAT}
    if hasattr(sre_parse, "POSSESSIVE_REPEAT"):
        possessive = sre_parse.POSSESSIVE_REPEAT
    else:
        possessive = None

    def has_repeat(items) -> bool:
        for op, av in items:
            if op in repeats and av[1] > 1:
                return True
            for sub in _children(op, av):
                if has_repeat(sub):
                    return True
        return False

    def inner_repeats(items):
        for op, av in items:
            if op in repeats and av[1] > 1:
                yield av[2]
            for sub in _children(op, av):
                yield from inner_repeats(sub)

    def delimited(body) -> bool:
        """`(\\.\\w+)*`, `(\\d+,)*`: each round starts (or ends) with a character no inner repeat
        can eat, so the input cannot be split two ways."""
        body = list(body)
        while len(body) == 1 and str(body[0][0]) == "SUBPATTERN":
            body = list(body[0][1][-1])
        for edge in (body[:1], body[-1:]):  # a delimiter first or last in the group
            if edge and str(edge[0][0]) == "LITERAL":
                ch = chr(edge[0][1])
                if all(len(r) == 1 and not _can_match(r[0], ch) for r in inner_repeats(body)):
                    return True
        return False

    def walk(items) -> str:
        for op, av in items:
            if op in repeats and av[1] > 1 and op is not possessive:
                if has_repeat(av[2]) and not delimited(av[2]):
                    return "a repeated group contains a repeat"
            for sub in _children(op, av):
                found = walk(sub)
                if found:
                    return found
        return ""

    def _children(op, av):
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            return [av[2]]
        if name == "SUBPATTERN":
            return [av[-1]]
        if name == "BRANCH":
            return list(av[1])
        if name in ("ASSERT", "ASSERT_NOT"):
            return [av[1]]
        if name == "ATOMIC_GROUP":
            return []
        return []

    return walk(parsed)


def _can_match(item, ch: str) -> bool:
    """Can this one-character regex item match `ch`? (True when unsure.)"""
    op, av = str(item[0]), item[1]
    if op == "LITERAL":
        return chr(av) == ch
    if op == "NOT_LITERAL":
        return chr(av) != ch
    if op == "IN":
        negate, hit = False, False
        for sub_op, sub_av in av:
            name = str(sub_op)
            if name == "NEGATE":
                negate = True
            elif name == "LITERAL":
                hit = hit or chr(sub_av) == ch
            elif name == "RANGE":
                hit = hit or sub_av[0] <= ord(ch) <= sub_av[1]
            elif name == "CATEGORY":
                hit = hit or _CATEGORY.get(str(sub_av), lambda c: True)(ch)
            else:
                return True
        return hit != negate
    return True


_CATEGORY = {
    "CATEGORY_DIGIT": str.isdigit, "CATEGORY_NOT_DIGIT": lambda c: not c.isdigit(),
    "CATEGORY_SPACE": str.isspace, "CATEGORY_NOT_SPACE": lambda c: not c.isspace(),
    "CATEGORY_WORD": lambda c: c.isalnum() or c == "_", "CATEGORY_NOT_WORD": lambda c: not (c.isalnum() or c == "_"),
}


# the line scanner and the regex time budget live in diagnose/scanner.py (importable from here too)
from lora_doctor.diagnose.scanner import LineScanner, RegexGuard, RegexTimeout, required_words  # noqa: E402,F401


def builtin_sources():
    """The shipped database folder (for tools that want it without the plugin host)."""
    from importlib import resources

    return [(resources.files("lora_doctor.known_errors"), BUILTIN_PREFIX + "known_errors")]

