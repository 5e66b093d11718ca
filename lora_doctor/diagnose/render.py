"""Print a DiagnosisReport on the terminal: the root cause and its fix first, then the rest."""

from __future__ import annotations

import textwrap

from lora_doctor.output.render import make_console, print_line as _line


def _paragraphs(text: str) -> list[str]:
    """Lines of a paragraph joined (TOML strings are often hard-wrapped); list items kept apart."""
    out: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            out.append("")
        elif out and out[-1] and not stripped.startswith(("-", "*", "•")) and not stripped[:1].isdigit():
            out[-1] += " " + stripped
        else:
            out.append(stripped)
    while out and not out[-1]:
        out.pop()
    return out


def _wrap(console, text: str, indent: str, style: str | None = None, hang: int = 0) -> None:
    width = max(40, min(getattr(console, "width", 100) or 100, 110) - len(indent))
    for para in _paragraphs(text) or [""]:
        for line in textwrap.wrap(para, width, subsequent_indent=" " * hang, break_on_hyphens=False) or [""]:
            _line(console, indent + line, style)


def _where(f) -> str:
    if not f.frames:
        return ""
    fr = f.frames[-1]
    return f"{fr.file}:{fr.line}" + (f" in {fr.function}" if fr.function else "")


def render_report(report, stream=None, *, verbose: bool = False) -> None:
    """The report as a person reads it (see docs/diagnose.md for an example)."""
    console = make_console(stream)
    log = report.log
    if report.diagnoses:
        best, others = report.diagnoses[0], report.diagnoses[1:]
        _render_best(console, best, verbose, from_log=report.command_from_log is not None)
        if others:
            _line(console, "")
            _line(console, "Other plausible causes:", "bold")
            for d in others:
                _line(console, f"  • {d.title} [{d.signature_id}] ({d.confidence:.0%})")
                if verbose:
                    for step in d.fix:
                        _wrap(console, f"- {step}", "      ")
    elif report.failed:
        _line(console, "✗ No known cause matches this failure.", "red")
        _line(console, "  Nothing in the known-error database fits; here is what the log shows.")
    else:
        lines = log.lines if log else 0
        _line(console, f"✓ No failure found in this log ({lines} lines).", "green")
        if log and log.errors:
            _line(console, "  It does have ERROR lines (training may have gone on):", "yellow")
            for e in log.errors[:5]:
                _line(console, f"    {e[:200]}")
    root = report.root
    if root is not None and (not report.diagnoses or verbose):
        _line(console, "")
        _render_failure(console, root, "Failure", verbose)
        if verbose:
            for f in report.failures[1:6]:
                _render_failure(console, f, "Also", verbose=False)
    if report.exit is not None and report.exit.description and (not report.diagnoses or verbose):
        _line(console, f"  Exit: {report.exit.description}")
    if report.explanations and (not report.diagnoses or verbose):
        from lora_doctor.diagnose.explain import explanation_lines

        _line(console, "")
        for text in explanation_lines(report.explanations):
            _line(console, "  " + text)
    if not report.diagnoses and report.failed:
        _line(console, "")
        _line(console, "  To teach lora-doctor this failure, add a signature: see `lora-doctor errors --help`.", "dim")
    if verbose and log is not None:
        _line(console, "")
        _line(console, f"  (read {log.lines} lines, {log.bytes} bytes; {len(report.failures)} failure(s))", "dim")
        for w in log.warnings[:10]:
            _line(console, f"  warning in log: {w[:200]}", "dim")
    if report.signature_errors or report.plugin_errors:
        _line(console, "")
        for e in report.signature_errors + report.plugin_errors:
            _line(console, f"! {e}", "yellow")


def _render_best(console, d, verbose: bool, from_log: bool = False) -> None:
    mark = {"error": "✗", "warn": "!", "info": "i"}.get(d.severity, "✗")
    _line(console, f"{mark} {d.title}", "red" if d.severity == "error" else "yellow")
    _line(console, f"  cause: {d.signature_id} (confidence {d.confidence:.0%})", "dim")
    if d.evidence:
        _line(console, "")
        _line(console, "  Seen in the log:", "bold")
        for e in d.evidence[: 8 if verbose else 3]:
            _line(console, f"    {e[:300]}")
    if d.why:
        _line(console, "")
        _line(console, "  Why:", "bold")
        _wrap(console, d.why, "    ")
    if d.fix:
        _line(console, "")
        _line(console, "  Fix:", "bold")
        for i, step in enumerate(d.fix, 1):
            _wrap(console, f"{i}. {step}", "    ", hang=len(f"{i}. "))
    if d.fix_command:
        _line(console, "")
        _line(console, "  Corrected command" + (" (the command the log printed, changed):" if from_log else ":"), "bold")
        _line(console, f"    $ {d.fix_command}", "bold")
    if d.refs:
        _line(console, "")
        _line(console, "  See: " + "  ".join(d.refs[:4]), "dim")
    if verbose and d.source:
        _line(console, f"  (from {d.source})", "dim")


def _render_failure(console, f, label: str, verbose: bool) -> None:
    exc = f.exception or "(traceback without its exception line)"
    first = f.message.split("\n", 1)[0] if f.message else ""
    _line(console, f"  {label}: {exc}{': ' + first[:300] if first else ''}")
    where = _where(f)
    if where:
        _line(console, f"    raised at {where}" + (f" (rank {f.rank})" if f.rank is not None else ""))
    if verbose:
        for fr in f.frames[-8:]:
            _line(console, f"      {fr.file}:{fr.line} {fr.function}", "dim")
        for c in f.causes:
            _line(console, f"    caused by {c.exception}: {c.message.split(chr(10), 1)[0][:200]}", "dim")
