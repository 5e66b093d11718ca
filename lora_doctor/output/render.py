"""Print findings like flutter doctor: one line per check, indented details, a summary line."""

from __future__ import annotations

import json
import os
import sys

from lora_doctor.host.doctor import CheckResult
from lora_doctor.model import Finding, Severity

STATUS_MARK = {"ok": "✓", "warning": "!", "error": "✗", "skipped": "–", "timeout": "!"}
SEVERITY_MARK = {Severity.OK: "•", Severity.INFO: "i", Severity.WARN: "!", Severity.ERROR: "✗"}
STYLE = {"ok": "green", "warning": "yellow", "error": "red", "skipped": "dim", "timeout": "yellow",
         Severity.OK: "green", Severity.INFO: "cyan", Severity.WARN: "yellow", Severity.ERROR: "red"}


PIPE_WIDTH = 100  # lines are wrapped at this width in a pipe or a file, unless COLUMNS says otherwise


def make_console(stream=None):
    """A rich Console: colour only on a terminal without NO_COLOR; never folds long lines (the
    renderer wraps prose itself, and keeps commands whole so that they can be copied)."""
    from rich.console import Console

    from lora_doctor.output.textout import degrade_unencodable

    stream = stream or sys.stdout
    degrade_unencodable(stream)
    plain = bool(os.environ.get("NO_COLOR")) or not getattr(stream, "isatty", lambda: False)()
    return Console(file=stream, no_color=plain, color_system=None if plain else "auto", highlight=False,
                   soft_wrap=True, emoji=False, markup=False)


def output_width(stream=None) -> int:
    """The width to wrap at: COLUMNS when set, else the terminal's width, else 100 (a pipe, a file)."""
    import shutil

    stream = stream or sys.stdout
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) >= 40:
        return int(columns)
    if getattr(stream, "isatty", lambda: False)():
        try:
            return max(40, os.get_terminal_size(stream.fileno()).columns)
        except (OSError, ValueError, AttributeError):
            return max(40, shutil.get_terminal_size((PIPE_WIDTH, 24)).columns)
    return PIPE_WIDTH


def _line(console, text: str, style: str | None = None, hang: int | None = None) -> None:
    """One line of output, wrapped at the console's width with a hanging indent (its own indent + 2,
    or `hang`) when it is prose; `hang=-1` never wraps (a command to copy)."""
    from lora_doctor.redact import redact_text  # a last guard: no token reaches the terminal in full

    text = redact_text(text)
    width = getattr(console, "wrap_width", 0)
    if width and hang != -1 and len(text) > width:
        import textwrap

        indent = len(text) - len(text.lstrip(" "))
        rest = " " * (indent + 2 if hang is None else hang)
        lines = textwrap.wrap(text.strip(" "), width=width, initial_indent=" " * indent, subsequent_indent=rest,
                              break_long_words=False, break_on_hyphens=False) or [text]
        text = "\n".join(lines)
    console.print(text, style=style)


print_line = _line  # the public name (diagnose/render.py prints through it too)


def _render_body(console, f: Finding, indent: str, verbose: bool) -> None:
    for line in f.detail.splitlines() if f.detail else ():
        _line(console, f"{indent}{line}")
    if f.fix:
        _line(console, f"{indent}Fix: {f.fix}", hang=len(indent) + 5)
    if f.fix_command:
        for line in f.fix_command.splitlines():
            _line(console, f"{indent}  $ {line}", "bold", hang=-1)
    if f.cause and verbose:
        _line(console, f"{indent}(predicts: {f.cause})", "dim")
    if verbose:
        for key, value in f.facts.items():
            _line(console, f"{indent}{key}: {value}", "dim")


def render_finding(console, f: Finding, indent: str = "    ", verbose: bool = False) -> None:
    """One finding: its mark and summary, then detail, fix and the exact command, indented."""
    _line(console, f"{indent}{SEVERITY_MARK[f.severity]} {f.summary}", STYLE[f.severity])
    _render_body(console, f, indent + "  ", verbose)


def shown_findings(r: CheckResult, verbose: bool, brief: bool = True) -> list[Finding]:
    """What a check shows: every finding with -v (or when not brief); else its problems (warnings,
    errors) with their details, or, when it has none, the one line that sums it up (the first ok
    finding, else the first)."""
    if verbose or not brief:
        return list(r.findings)
    problems = [f for f in r.findings if f.severity >= Severity.WARN]
    if problems:
        return problems
    first = next((f for f in r.findings if f.severity == Severity.OK), r.findings[0] if r.findings else None)
    return [first] if first is not None else []


def render_result(console, r: CheckResult, verbose: bool = False, brief: bool = False) -> int:
    """One check: `[✓] Title: summary` when it shows one finding, else a line per finding below.
    `brief` (without -v): only problems get their details; returns how many findings it left out."""
    title = r.check.title
    if r.status == "skipped":
        _line(console, f"[{STATUS_MARK['skipped']}] {title} (skipped: {r.skipped_reason})", STYLE["skipped"])
        return 0
    mark = f"[{STATUS_MARK[r.status]}] {title}"
    shown = shown_findings(r, verbose, brief)
    if len(shown) == 1:
        f = shown[0]
        _line(console, f"{mark}: {f.summary}", STYLE[r.status], hang=4)
        if verbose or not brief or f.severity >= Severity.WARN:
            _render_body(console, f, "    ", verbose)
    else:
        _line(console, mark, STYLE[r.status])
        for f in shown:
            render_finding(console, f, verbose=verbose)
    if verbose:
        _line(console, f"    ({r.seconds:.2f} s, {r.check.id}, plugin {r.check.plugin})", "dim")
    hidden = len(r.findings) - len(shown)
    if brief and not verbose and len(shown) == 1 and shown[0].severity < Severity.WARN:
        hidden += bool(shown[0].detail or shown[0].fix or shown[0].fix_command)
    return hidden


def render_results(results: list[CheckResult], summary: dict, *, verbose: bool = False, stream=None,
                   header: str = "", brief: bool = False, wrap: bool = False) -> None:
    """flutter-doctor output: a header, one block per check, a summary line. `brief` (env): without -v
    a check that is fine is one line and a problem shows its details and fix; notes and facts need -v.
    `wrap` (env): prose is wrapped at the terminal's width (100 columns in a pipe, or COLUMNS); commands
    are never wrapped."""
    console = make_console(stream)
    console.wrap_width = output_width(stream or sys.stdout) if wrap else 0
    if header:
        _line(console, header, "bold", hang=-1)  # which Python is checked: one line, as written
    skipped: dict[str, list[str]] = {}
    hidden = 0
    for r in results:
        if r.status == "skipped" and not verbose:  # one line per reason, after the checks that ran
            skipped.setdefault(r.skipped_reason, []).append(r.check.title)
        else:
            hidden += render_result(console, r, verbose, brief)
    for reason, titles in skipped.items():
        _line(console, f"[{STATUS_MARK['skipped']}] {'; '.join(titles)} (skipped: {reason})", STYLE["skipped"])
    errors, warnings = summary["errors"], summary["warnings"]
    _line(console, "")
    more = " (-v shows the notes and facts behind each line)" if hidden else ""
    if errors or warnings:
        parts = [f"{errors} error{'s' * (errors != 1)}", f"{warnings} warning{'s' * (warnings != 1)}"]
        _line(console, f"{'✗' if errors else '!'} Doctor found issues: {', '.join(parts)}.{more}",
              "red" if errors else "yellow")
    else:
        _line(console, f"✓ No issues found.{more}", "green")
    fixed = combined_fix(results)
    if fixed:  # the output ends with one command that applies every fix above (launch.edit.combined)
        _line(console, "Every fix above in one command:", "bold")
        _line(console, f"  $ {fixed}", "bold", hang=-1)


def combined_fix(results: list[CheckResult]) -> str:
    """One corrected training command with the edits of every warning's and error's fix command;
    '' when fewer than two findings edit the command."""
    from lora_doctor.launch.edit import combined

    return combined([f for r in results for f in r.findings if f.severity >= Severity.WARN])


def print_json(obj, stream=None) -> None:
    """One JSON object, UTF-8 text, tokens and secret option values redacted in the values before
    it is serialized (a pass over the JSON text could swallow its quotes)."""
    from lora_doctor.redact import redact_obj

    stream = stream or sys.stdout
    utf = str(getattr(stream, "encoding", None) or "utf-8").lower().replace("-", "").startswith("utf")
    # a console that is not UTF-8 gets \u escapes: the same data, where characters would be replaced
    stream.write(json.dumps(redact_obj(obj), indent=2, ensure_ascii=not utf, default=str) + "\n")
