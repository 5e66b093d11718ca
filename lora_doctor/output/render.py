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


def make_console(stream=None):
    """A rich Console: colour only on a terminal without NO_COLOR; never folds long lines."""
    from rich.console import Console

    from lora_doctor.output.textout import degrade_unencodable

    stream = stream or sys.stdout
    degrade_unencodable(stream)
    plain = bool(os.environ.get("NO_COLOR")) or not getattr(stream, "isatty", lambda: False)()
    return Console(file=stream, no_color=plain, color_system=None if plain else "auto", highlight=False,
                   soft_wrap=True, emoji=False, markup=False)


def _line(console, text: str, style: str | None = None) -> None:
    from lora_doctor.redact import redact_text  # a last guard: no token reaches the terminal in full

    console.print(redact_text(text), style=style)


print_line = _line  # the public name (diagnose/render.py prints through it too)


def _render_body(console, f: Finding, indent: str, verbose: bool) -> None:
    for line in f.detail.splitlines() if f.detail else ():
        _line(console, f"{indent}{line}")
    if f.fix:
        _line(console, f"{indent}Fix: {f.fix}")
    if f.fix_command:
        for line in f.fix_command.splitlines():
            _line(console, f"{indent}  $ {line}", "bold")
    if f.cause and verbose:
        _line(console, f"{indent}(predicts: {f.cause})", "dim")
    if verbose:
        for key, value in f.facts.items():
            _line(console, f"{indent}{key}: {value}", "dim")


def render_finding(console, f: Finding, indent: str = "    ", verbose: bool = False) -> None:
    """One finding: its mark and summary, then detail, fix and the exact command, indented."""
    _line(console, f"{indent}{SEVERITY_MARK[f.severity]} {f.summary}", STYLE[f.severity])
    _render_body(console, f, indent + "  ", verbose)


def render_result(console, r: CheckResult, verbose: bool = False) -> None:
    """One check: `[✓] Title: summary` when it has one finding, else a line per finding below."""
    title = r.check.title
    if r.status == "skipped":
        _line(console, f"[{STATUS_MARK['skipped']}] {title} (skipped: {r.skipped_reason})", STYLE["skipped"])
        return
    mark = f"[{STATUS_MARK[r.status]}] {title}"
    if len(r.findings) == 1:
        f = r.findings[0]
        _line(console, f"{mark}: {f.summary}", STYLE[r.status])
        _render_body(console, f, "    ", verbose)
    else:
        _line(console, mark, STYLE[r.status])
        for f in r.findings:
            render_finding(console, f, verbose=verbose)
    if verbose:
        _line(console, f"    ({r.seconds:.2f} s, {r.check.id}, plugin {r.check.plugin})", "dim")


def render_results(results: list[CheckResult], summary: dict, *, verbose: bool = False, stream=None,
                   header: str = "") -> None:
    """flutter-doctor output: a header, one block per check, a summary line."""
    console = make_console(stream)
    if header:
        _line(console, header, "bold")
    skipped: dict[str, list[str]] = {}
    for r in results:
        if r.status == "skipped" and not verbose:  # one line per reason, after the checks that ran
            skipped.setdefault(r.skipped_reason, []).append(r.check.title)
        else:
            render_result(console, r, verbose)
    for reason, titles in skipped.items():
        _line(console, f"[{STATUS_MARK['skipped']}] {'; '.join(titles)} (skipped: {reason})", STYLE["skipped"])
    errors, warnings = summary["errors"], summary["warnings"]
    _line(console, "")
    if errors or warnings:
        parts = [f"{errors} error{'s' * (errors != 1)}", f"{warnings} warning{'s' * (warnings != 1)}"]
        _line(console, f"{'✗' if errors else '!'} Doctor found issues: {', '.join(parts)}.",
              "red" if errors else "yellow")
    else:
        _line(console, "✓ No issues found.", "green")
    fixed = combined_fix(results)
    if fixed:  # the output ends with one command that applies every fix above (launch.edit.combined)
        _line(console, "Every fix above in one command:", "bold")
        _line(console, f"  $ {fixed}", "bold")


def combined_fix(results: list[CheckResult]) -> str:
    """One corrected training command with the edits of every warning's and error's fix command;
    '' when fewer than two findings edit the command."""
    from lora_doctor.launch.edit import combined

    return combined([f for r in results for f in r.findings if f.severity >= Severity.WARN])


def print_json(obj, stream=None) -> None:
    """One JSON object, UTF-8 text, tokens and secret option values redacted."""
    from lora_doctor.redact import redact_text

    stream = stream or sys.stdout
    utf = str(getattr(stream, "encoding", None) or "utf-8").lower().replace("-", "").startswith("utf")
    # a console that is not UTF-8 gets \u escapes: the same data, where characters would be replaced
    stream.write(redact_text(json.dumps(obj, indent=2, ensure_ascii=not utf, default=str)) + "\n")
