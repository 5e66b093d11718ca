"""Name the cause of a failed run: the parsed log × the known-error signatures × code matchers.

Public API (used by `lora-doctor diagnose` and by `lora-doctor run` after a crash):
`diagnose_text(text, …)`, `diagnose_file(path, …)` -> `DiagnosisReport`.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field

from lora_doctor.diagnose.exit_marks import exit_cause
from lora_doctor.diagnose.logparse import ParsedLog, chain, parse_stream
from lora_doctor.diagnose.notable import CJK_END_RE, CJK_START_RE, RANK_RE, compiled_notable
from lora_doctor.diagnose.scanner import LineScanner, RegexGuard, locator
from lora_doctor.diagnose.signatures import Database, Signature, load_database
from lora_doctor.model import Diagnosis, ExitCause, Failure

MAX_OTHERS = 5
MAX_STANDALONE = 20  # error messages pasted alone, made failures
_NOTABLE_RX = compiled_notable()


@dataclass
class PostMortem:
    """What a code matcher (`lora_doctor_diagnose`) gets besides the failure."""

    log: ParsedLog
    launch: object = None  # lora_doctor.launch.command.Launch or None
    facts: dict | None = None
    exit: ExitCause | None = None
    notable: dict = field(default_factory=dict)  # NOTABLE name -> first matching line
    command_from_log: bool = False  # the launch was read from the log: its paths may be another machine's

    @property
    def options(self) -> dict:
        return dict(getattr(self.launch, "options", None) or {})

    def option(self, name: str, default=None):
        return self.options.get(name, default)

    def fact(self, dotted: str, default=None):
        value = self.facts or {}
        for part in dotted.split("."):
            if not isinstance(value, dict) or part not in value:
                return default
            value = value[part]
        return value


@dataclass
class DiagnosisReport:
    """The result: diagnoses best first, failures root first, how the process ended."""

    diagnoses: list[Diagnosis] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    exit: ExitCause | None = None
    signature_errors: list[str] = field(default_factory=list)
    log: ParsedLog | None = None
    plugin_errors: list[str] = field(default_factory=list)
    command_from_log: object = None  # the Launch read from the log (a GUI's echo) when none was given
    explanations: list[dict] = field(default_factory=list)  # sd-scripts' own checks seen (explain.py): no cause

    @property
    def root(self) -> Failure | None:
        return self.failures[0] if self.failures else None

    @property
    def failed(self) -> bool:
        """The log shows a failure (an exception, or an abnormal exit)."""
        return bool(self.failures) or bool(self.exit and (self.exit.signal or self.exit.ntstatus or self.exit.code))

    def to_json(self) -> dict:
        log = self.log
        return {
            "diagnoses": [d.to_json() for d in self.diagnoses],
            "failures": [_failure_json(f, log) for f in self.failures],
            "exit": self.exit.to_json() if self.exit else None,
            "signature_errors": list(self.signature_errors),
            "plugin_errors": list(self.plugin_errors),
            "command_from_log": _argv_json(self.command_from_log),
            "explanations": list(self.explanations),
            "log": None if log is None else {"lines": log.lines, "bytes": log.bytes, "errors": log.errors[:20],
                                             "truncated_lines": log.truncated_lines},
        }


def _argv_json(launch) -> str | None:
    if launch is None:
        return None
    from lora_doctor.launch.edit import join
    from lora_doctor.redact import redact_argv

    return join(redact_argv(list(launch.argv)))


def _failure_json(f: Failure, log: ParsedLog | None) -> dict:
    from lora_doctor.redact import redact_text

    out = f.to_json()
    out["causes"] = [c.to_json() for c in f.causes]
    out["excerpt"] = [redact_text(line) for line in log.excerpt(f)] if log is not None else []
    return out


# -- entry points ----------------------------------------------------------------------------
def diagnose_text(text, *, launch=None, facts: dict | None = None, exit_code: int | None = None,
                  plugin_dirs=(), host=None, db: Database | None = None) -> DiagnosisReport:
    """Diagnose a log held in memory (str or bytes). `db` (with its `host`): a database already
    loaded, for callers that diagnose many logs."""
    import io

    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
    return _diagnose(io.BytesIO(data), launch=launch, facts=facts, exit_code=exit_code,
                     plugin_dirs=plugin_dirs, host=host, size=len(data), db=db)


def diagnose_file(path, *, launch=None, facts: dict | None = None, exit_code: int | None = None,
                  plugin_dirs=(), host=None) -> DiagnosisReport:
    """Diagnose a log file, streaming it (memory stays bounded for logs of any size)."""
    with open(path, "rb") as fh:
        return _diagnose(fh, launch=launch, facts=facts, exit_code=exit_code, plugin_dirs=plugin_dirs, host=host)


def diagnose_stream(stream, **kwargs) -> DiagnosisReport:
    """Diagnose a binary stream (e.g. stdin.buffer)."""
    return _diagnose(stream, **kwargs)


def load_signatures(host=None, plugin_dirs=(), *, strict: bool = False) -> tuple[Database, object]:
    """The database from every source the plugin host knows (builtin folder, plugins, folders)."""
    if host is None:
        from lora_doctor.host.pluginmanager import PluginHost

        host = PluginHost(list(plugin_dirs))
    sources, errors = host.signature_sources()
    return load_database(sources, extra_errors=errors, strict=strict), host


def _diagnose(stream, *, launch=None, facts=None, exit_code=None, plugin_dirs=(), host=None, size=None,
              db: Database | None = None) -> DiagnosisReport:
    if db is None:
        db, host = load_signatures(host, plugin_dirs)
    with RegexGuard() as guard:
        locators = message_locators(db)
        scanner = LineScanner(db.log_patterns() + list(_NOTABLE_RX.values()) + list(locators.values()), guard)
        parsed = parse_stream(stream, scanner)
        if size is not None:
            parsed.bytes = size
        oom = _NOTABLE_RX["cuda_oom"]  # an out-of-memory message alone is a failure too (for the code matchers)
        add_standalone_failures(parsed, scanner, {**locators, oom: oom}, guard)
        exit_ = _merge_exit(parsed.exit, exit_code)
        notable = {**parsed.noticed, **{name: hit[0] for name, rx in _NOTABLE_RX.items() if (hit := scanner.hit(rx))}}
        from_log = None
        if launch is None:
            from lora_doctor.launch.from_log import command_from_log

            launch = from_log = command_from_log(notable, parsed.ordered_failures())
        post = PostMortem(parsed, launch, facts, exit_, notable, command_from_log=from_log is not None)
        matches = match_all(db, parsed, scanner, post, guard)
        code = _code_diagnoses(host, parsed.root, post) if host is not None else ([], [])
    report = DiagnosisReport(diagnoses=_rank(matches, code[0]), failures=parsed.ordered_failures(), exit=exit_,
                             signature_errors=[str(e) for e in db.errors if e.fatal], log=parsed, plugin_errors=code[1],
                             command_from_log=from_log)
    from lora_doctor.diagnose.explain import explain_report

    report.explanations = explain_report(parsed, launch)
    for pattern in sorted(guard.timed_out):
        owners = [s.where for s in db.signatures if _uses(s, pattern)]
        report.signature_errors.append(f"{', '.join(owners) or 'signature'}: regex {pattern!r} took longer than "
                                       f"{guard.budget:g} s on this log and was skipped; simplify it")
    return report


def _uses(sig: Signature, pattern: str) -> bool:
    rxs = [rx for f in sig.forms for rx in (f.message, f.frame, f.frame_when_shown, *f.log_all, *f.log_any, *f.log_none)]
    return any(rx is not None and rx.pattern == pattern for rx in rxs)


def _merge_exit(found: ExitCause | None, exit_code: int | None) -> ExitCause | None:
    if exit_code is None:
        return found
    merged = exit_cause(exit_code, signal=found.signal if found else None,
                        paging="paging file" in (found.description if found else ""))
    return merged


# -- signature matching ------------------------------------------------------------------------
@dataclass
class Match:
    sig: Signature
    failure: Failure | None
    groups: dict
    evidence: list[str]
    on_root: bool
    post: PostMortem
    specificity: float = 0.0  # of the form that matched

    @property
    def diagnosis(self) -> Diagnosis:
        return to_diagnosis(self, self.post)


def _exception_ok(sig: Signature, f: Failure) -> bool:
    if not sig.exception:
        return not f.is_wrapper
    if is_standalone(f):
        return sig.message is not None  # a message pasted without its type: the message decides
    name, full = f.exception_name.lower(), f.exception.lower()
    return any(e == full or e == name or full.endswith("." + e) for e in map(str.lower, sig.exception))


def is_standalone(f: Failure) -> bool:
    """An error message pasted alone: no exception type, no traceback (add_standalone_failures)."""
    return not f.exception and not f.frames and bool(f.message)


@functools.lru_cache(maxsize=1024)
def _folded(rx: re.Pattern) -> re.Pattern:
    return rx if rx.flags & re.IGNORECASE else re.compile(rx.pattern, rx.flags | re.IGNORECASE)


def search_message(rx: re.Pattern, message: str, guard):
    """A message regex on a failure's message: as written, then rejoined where a console wrapped
    it, then in any letter case (a forum lower-cased the paste)."""
    m = guard.search(rx, message)
    if m is None and "\n" in message:
        m = guard.search(rx, unwrap(message)) or guard.search(rx, unwrap(message, ""))
    if m is None and not (rx.flags & re.IGNORECASE):
        folded = _folded(rx)
        m = guard.search(folded, message)
        if m is None and "\n" in message:
            m = guard.search(folded, unwrap(message)) or guard.search(folded, unwrap(message, ""))
    return m


# -- error messages pasted alone -----------------------------------------------------------------
def message_locators(db: Database) -> dict[re.Pattern, re.Pattern]:
    """message regex -> the line regex that finds it pasted alone (scanner.locator), for every form
    whose message alone may name the cause (a form that also requires a frame never stands alone)."""
    out: dict[re.Pattern, re.Pattern] = {}
    for sig in db.signatures:
        for form in sig.forms:
            if form.message is not None and form.frame is None and form.message not in out:
                out[form.message] = locator(form.message)
    return out


def add_standalone_failures(parsed: ParsedLog, scanner: LineScanner, locators: dict, guard) -> None:
    """A log holding no exception of its own (a one-line paste, a fragment, the message in a
    record, only a wrapper's traceback) can still show a known error's message: each line a
    signature's message finds becomes a failure without type or frames, in log order, so the
    signatures and the code matchers judge it like any other (the message decides, not the type)."""
    if parsed.has_typed_failure:
        return
    from lora_doctor.diagnose.paste import strip_front

    seen: dict[int, Failure] = {}
    for rx, loc in locators.items():
        hit = scanner.hit(loc)
        if hit is None:
            continue
        no = scanner.line_no(loc) or 0
        if no in seen:
            continue
        line = hit[0]
        if _WARNING_ONLY.search(line):
            continue  # a warning quoting a message is not the failure
        message = strip_front(RANK_RE.sub("", line)).strip()
        if not search_message(rx, message, guard):
            continue  # the locator found it after a prefix the message regex does not allow
        seen[no] = Failure(exception="", message=message[:8192], line_no=no)
        if len(seen) >= MAX_STANDALONE:
            break
    for no in sorted(seen):
        parsed.add_standalone(seen[no], [seen[no].message[:300]])


_WARNING_ONLY = re.compile(r"\b\w*Warning:|^[^A-Za-z]*(?:WARNING|WARN)\b|\[(?:WARNING|WARN)\]|\bWARNING\[|\bwarn\(")


def _frame_ok(rx, f: Failure, guard) -> bool:
    return any(guard.search(rx, f"{fr.file}:{fr.function}") for fr in f.frames)


def _candidates(parsed: ParsedLog) -> list[tuple[Failure, bool]]:
    """(failure, is in the root's chain): the root chain first, latest link first, then the rest."""
    root = parsed.root
    out: list[tuple[Failure, bool]] = []
    if root is not None:
        out += [(f, True) for f in reversed(chain(root))]
    for top in parsed.failures:
        if top is root:
            continue
        out += [(f, False) for f in reversed(chain(top))]
    return out


def match_signature(sig: Signature, parsed: ParsedLog, scanner: LineScanner, post: PostMortem, guard) -> Match | None:
    """Does the signature (one of its forms) hold for this log? Returns the match with its evidence, or None."""
    for form in sig.forms:
        m = _match_form(form, parsed, scanner, post, guard)
        if m is not None:
            m.sig, m.specificity = sig, form.specificity
            return m
    return None


def _match_form(sig: Signature, parsed: ParsedLog, scanner: LineScanner, post: PostMortem, guard) -> Match | None:
    groups: dict = {}
    evidence: list[str] = []
    if sig.exit_code:
        code = post.exit.code if post.exit else None
        if code not in sig.exit_code:
            return None
        evidence.append(f"exit code {code}")
    for rx in sig.log_none:
        if scanner.hit(rx):
            return None
    hit_lines: list[str] = []
    for rx in sig.log_all:
        hit = scanner.hit(rx)
        if hit is None:
            return None
        groups.update(hit[1])
        hit_lines.append(hit[0])
    if sig.log_any:
        hits = [scanner.hit(rx) for rx in sig.log_any]
        first = next((h for h in hits if h), None)
        if first is None:
            return None
        groups.update(first[1])
        hit_lines.append(first[0])
    evidence += [f"log: {line.strip()[:400]}" for line in hit_lines]
    failure, on_root = None, parsed.root is None or _on_root_chain(hit_lines, parsed.root)
    if sig.needs_failure:
        for f, in_root in _candidates(parsed):
            if not _exception_ok(sig, f):
                continue
            m = None
            if sig.message is not None:
                m = search_message(sig.message, f.message, guard)
                if m is None:
                    continue
            if sig.frame is not None and not _frame_ok(sig.frame, f, guard):
                continue
            if sig.frame_when_shown is not None and f.frames and not _frame_ok(sig.frame_when_shown, f, guard):
                continue
            failure, on_root = f, in_root
            if m is not None:
                groups.update({k: v for k, v in m.groupdict().items() if v is not None})
            break
        if failure is None:
            return None
        first_line = failure.message.split("\n", 1)[0]
        evidence.insert(0, f"{failure.exception}: {first_line}"[:400] if failure.exception else first_line[:400])
        if failure.frames:
            fr = failure.frames[-1]
            evidence.insert(1, f"raised at {fr.file}:{fr.line} in {fr.function}")
    from lora_doctor.redact import redact_text

    return Match(sig, failure, groups, [redact_text(e) for e in _dedupe(evidence)], on_root, post)


@functools.lru_cache(maxsize=512)  # every signature with a message tries every failure
def unwrap(message: str, sep: str = " ") -> str:
    """A message a console wrapped (rich at 80 columns) as one line: lines rejoined with `sep` (a
    space where the wrap was at a space; "" where a long word was cut), CJK text without one."""
    out = ""
    for line in message.split("\n"):
        part = line.strip()
        if out and part and not (CJK_END_RE.search(out) and CJK_START_RE.match(part)):
            out += sep
        out += part
    return out


def _on_root_chain(lines: list[str], root: Failure | None) -> bool:
    """Is one of these log lines the root failure's own exception line (or a line of its message)?"""
    if root is None or not lines:
        return False
    texts = [f"{f.exception}: {f.message}" if f.exception else f.message for f in chain(root)]
    for line in lines:
        body = RANK_RE.sub("", line).strip()
        if len(body) >= 8 and any(body in text for text in texts):
            return True
    return False


def _dedupe(evidence: list[str]) -> list[str]:
    """Drop a line that repeats another (a log line that is the exception line says nothing new)."""
    unique: list[str] = []
    for e in evidence:
        body = e[5:] if e.startswith("log: ") else e
        if not any(body in (u[5:] if u.startswith("log: ") else u) or u in body for u in unique):
            unique.append(e)
    return unique


def match_all(db: Database, parsed: ParsedLog, scanner: LineScanner, post: PostMortem, guard) -> list[Match]:
    out = []
    for sig in db.signatures:
        m = match_signature(sig, parsed, scanner, post, guard)
        if m is not None:
            out.append(m)
    return out


def _confidence(m: Match) -> float:
    conf = 0.55 + 0.07 * m.specificity
    if not m.on_root:
        conf -= 0.25
    if m.failure is not None and is_standalone(m.failure):
        conf -= 0.1  # the message without its exception type or traceback
    return max(0.05, min(0.97, conf))


def to_diagnosis(m: Match, post: PostMortem) -> Diagnosis:
    sig = m.sig
    fill = _Filler(m.groups, post)
    fix = [fill(step) for step in sig.fix]
    fix_command = ""
    if sig.edit:
        fix.append(describe_edit(sig.edit))
        fix_command = corrected_command(post.launch, sig.edit)
    return Diagnosis(signature_id=sig.id, title=fill(sig.title), confidence=_confidence(m), evidence=m.evidence,
                     why=fill(sig.why), fix=fix, fix_command=fix_command, refs=list(sig.refs),
                     severity=sig.severity, source=sig.where)


def _rank(matches: list[Match], code: list[tuple[Diagnosis, int]]) -> list[Diagnosis]:
    """Priority, then specificity (confidence); one entry per id (code results merge into it)."""
    post_sorted = sorted(matches, key=lambda m: (m.sig.priority, m.on_root, m.specificity), reverse=True)
    ranked: list[tuple[tuple, Diagnosis]] = []
    by_id: dict[str, int] = {}
    for m in post_sorted:
        if m.sig.id in by_id:
            continue
        d = m.diagnosis
        by_id[d.signature_id] = len(ranked)
        ranked.append(((m.sig.priority, m.on_root, d.confidence), d))
    for d, priority in code:
        if d.signature_id in by_id:
            key, sig_d = ranked[by_id[d.signature_id]]
            ranked[by_id[d.signature_id]] = ((key[0], True, max(key[2], d.confidence)), _merge(sig_d, d))
            continue
        by_id[d.signature_id] = len(ranked)
        ranked.append(((priority, True, d.confidence), d))
    ranked.sort(key=lambda kd: kd[0], reverse=True)
    return [d for _, d in ranked][:1 + MAX_OTHERS]


def _merge(sig_d: Diagnosis, code_d: Diagnosis) -> Diagnosis:
    """A signature's explanation with the numbers a code matcher computed."""
    fix = list(code_d.fix) or list(sig_d.fix)  # the computed steps are the specific ones
    return Diagnosis(signature_id=sig_d.signature_id, title=sig_d.title,
                     confidence=max(sig_d.confidence, code_d.confidence),
                     evidence=_dedupe(code_d.evidence + sig_d.evidence),
                     why=(code_d.why + ("\n" if code_d.why else "") + sig_d.why).strip(), fix=fix,
                     fix_command=code_d.fix_command or sig_d.fix_command,
                     refs=list(dict.fromkeys(sig_d.refs + code_d.refs)), severity=sig_d.severity,
                     source=f"{sig_d.source} + {code_d.source}".strip(" +"))


def _code_diagnoses(host, root: Failure | None, post: PostMortem) -> tuple[list[tuple[Diagnosis, int]], list[str]]:
    """Diagnoses from every plugin's `lora_doctor_diagnose`, each plugin isolated."""
    out, errors = [], []
    for name, result in host.call_each("lora_doctor_diagnose", failure=root, postmortem=post):
        if isinstance(result, Exception):
            errors.append(f"plugin {name}: lora_doctor_diagnose raised {type(result).__name__}: {result}")
            continue
        for d in result or ():
            if isinstance(d, Diagnosis):
                if not d.source:
                    d.source = f"plugin {name}"
                out.append((d, getattr(d, "priority", 50)))
            else:
                errors.append(f"plugin {name}: lora_doctor_diagnose returned {type(d).__name__}, not a Diagnosis")
    return out, errors


# -- fix text: placeholders and the corrected command ---------------------------------------
_PLACEHOLDER = re.compile(r"\{(?:(option|fact):)?([A-Za-z_][\w.\-]*)\}")


class _Filler:
    """Fills {group}, {option:NAME} and {fact:dotted.path} in fix and why texts."""

    def __init__(self, groups: dict, post: PostMortem):
        self.groups, self.post = groups, post

    def value(self, kind: str | None, name: str) -> str | None:
        if kind == "option":
            if self.post.launch is None:
                return None
            v = self.post.option(name)
            if v is None:
                return "(not set)"
            return " ".join(map(str, v)) if isinstance(v, list) else ("set" if v is True else str(v))
        if kind == "fact":
            v = self.post.fact(name)
            return None if v is None else str(v)
        v = self.groups.get(name)
        return None if v is None else str(v)

    def __call__(self, text: str) -> str:
        from lora_doctor.redact import redact_text

        def sub(m: re.Match) -> str:
            v = self.value(m.group(1), m.group(2))
            if v is None:
                return f"--{m.group(2)}" if m.group(1) == "option" else m.group(0)
            return v

        return redact_text(_PLACEHOLDER.sub(sub, text))


def _edit_changes(edit: dict) -> tuple[list[tuple[str, object]], list[str]]:
    changes: list[tuple[str, object]] = []
    for opt in edit.get("add", []):
        name, eq, value = opt.lstrip("-").partition("=")
        changes.append((name, value if eq else True))
    for name, value in (edit.get("set") or {}).items():
        changes.append((name.lstrip("-"), value if not isinstance(value, bool) else (True if value else None)))
    remove = [r.lstrip("-").split("=", 1)[0] for r in edit.get("remove", [])]
    return changes, remove


def describe_edit(edit: dict) -> str:
    """'Change the command: add --enable_bucket; set --resolution=512,512; remove --cache_latents.'"""
    parts = []
    if edit.get("add"):
        parts.append("add " + " ".join(edit["add"]))
    if edit.get("set"):
        parts.append("set " + " ".join(f"--{k.lstrip('-')}={v}" for k, v in edit["set"].items()))
    if edit.get("remove"):
        parts.append("remove " + " ".join(edit["remove"]))
    return "Change the command: " + "; ".join(parts) + "."


def corrected_command(launch, edit: dict, platform: str | None = None) -> str:
    """The user's command with a signature's edit applied (launch.edit.corrected), or '' without a command."""
    from lora_doctor.launch.edit import corrected

    changes, remove = _edit_changes(edit)
    return corrected(launch, changes, remove, platform=platform)
