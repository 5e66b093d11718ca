"""Run checks concurrently, each isolated and within its time budget."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace

from lora_doctor.context import Context
from lora_doctor.host.isolation import plugin_code
from lora_doctor.model import Check, CheckSkipped, Finding, Severity

STATUS_BY_SEVERITY = {Severity.OK: "ok", Severity.INFO: "ok", Severity.WARN: "warning", Severity.ERROR: "error"}


@dataclass
class CheckResult:
    """One check's outcome: status is ok / warning / error / skipped / timeout."""

    check: Check
    status: str
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    skipped_reason: str = ""

    def to_json(self) -> dict:
        worst = max((f for f in self.findings), key=lambda f: f.severity, default=None)
        return {
            "id": self.check.id,
            "title": self.check.title,
            "plugin": self.check.plugin,
            "status": self.status,
            "summary": self.skipped_reason or (worst.summary if worst else ""),
            "seconds": round(self.seconds, 3),
            "findings": [f.to_json() for f in self.findings],
        }


def applies(check: Check, ctx: Context) -> str:
    """'' when the check applies to this context, else why it is skipped."""
    if check.applies == "command" and ctx.launch is None:
        return "no training command given"
    if check.applies == "model" and not ctx.model:
        return "no model given (--model or a command)"
    if check.applies == "dataset" and not (ctx.options.get("train_data_dir") or ctx.options.get("dataset_config")):
        return "no dataset given (a command with --train_data_dir or --dataset_config)"
    return ""


def select(checks: list[Check], only=(), skip=()) -> list[Check]:
    """Apply --only/--skip; an id matches itself and its family (`auth` matches `auth.token`)."""
    def hit(check_id: str, patterns) -> bool:
        return any(check_id == p or check_id.startswith(p + ".") for p in patterns)

    return [c for c in checks if (not only or hit(c.id, only)) and not hit(c.id, skip)]


def _status(findings: list[Finding]) -> str:
    worst = max((f.severity for f in findings), default=Severity.OK)
    return STATUS_BY_SEVERITY[worst]


def _stamp(f, check: Check) -> Finding:
    if not isinstance(f, Finding):
        raise TypeError(f"it yielded {type(f).__name__}, not a lora_doctor.model.Finding")
    return replace(f, check_id=check.id)


def run_checks(checks: list[Check], ctx: Context, *, budget_scale: float = 1.0) -> list[CheckResult]:
    """Run every applicable check in its own daemon thread; return results in check order.

    A check that raises becomes one warning naming its plugin (not checked is not an error of
    the training: it never blocks `run`); one that overruns its budget is reported as timed out
    (its thread is abandoned, never joined). Time spent waiting for the target probe
    (`ctx.facts.get()`) is not charged to a check's budget. Checks run as plugin code: their
    print() goes to stderr, their os._exit() raises.
    """
    results: list[CheckResult | None] = [None] * len(checks)
    threads: list[tuple[int, threading.Thread, float, float]] = []

    def work(i: int, check: Check, started: float) -> None:
        try:
            with plugin_code():
                findings = [_stamp(f, check) for f in (check.run(ctx) or ())]
        except CheckSkipped as exc:  # its input failed (reported by another check): not an all-clear
            results[i] = CheckResult(check, "skipped", seconds=time.monotonic() - started, skipped_reason=str(exc))
            return
        except BaseException as exc:  # SystemExit too: a check must never end the doctor silently
            if isinstance(exc, KeyboardInterrupt):
                raise
            findings = [Finding(Severity.WARN, f"the check {check.id} (plugin {check.plugin or '?'}) crashed: "
                                f"{type(exc).__name__}: {exc}",
                                fix=f"Report it to the plugin's author, or skip it with --skip {check.id}.",
                                check_id=check.id)]
        results[i] = CheckResult(check, _status(findings), findings, time.monotonic() - started)

    for i, check in enumerate(checks):
        reason = applies(check, ctx)
        if reason:
            results[i] = CheckResult(check, "skipped", skipped_reason=reason)
            continue
        started = time.monotonic()
        t = threading.Thread(target=work, args=(i, check, started), daemon=True, name=f"check:{check.id}")
        t.start()
        threads.append((i, t, started, check.timeout * budget_scale))
    for i, t, started, budget in threads:
        while t.is_alive():
            # The time the check spent waiting for the probe (bounded by its own timeout) is not charged.
            left = budget - (time.monotonic() - started - ctx.facts.waited(t.ident))
            if left <= 0:
                break
            t.join(left)
        if results[i] is None:
            check = checks[i]
            # A warning, not an error: an unanswered check says nothing is wrong, and must not block `run`.
            results[i] = CheckResult(check, "timeout", [Finding(
                Severity.WARN, f"did not finish within its {budget:.0f} s budget",
                detail="Something it waits for (a network call, a subprocess) does not answer, so this was not checked.",
                fix=f"Run again with -v to see more, or skip it with --skip {check.id}.", check_id=check.id)],
                budget)
    return [r for r in results if r is not None]


def plugin_error_checks(errors: list[tuple[str, str]]) -> list[Check]:
    """One check per broken plugin (failed import, a raising or slow hook), id `plugin.<name>`:
    selectable like any check (`--skip plugin.<name>`), and its finding is a warning — a broken
    plugin is not a problem of the training, so it never blocks `run`."""
    out = []
    for plugin, message in errors:
        finding = Finding(Severity.WARN, f"plugin {plugin} is broken: {message}",
                          fix=f"Fix or remove the plugin (`lora-doctor plugins` shows where it comes from), "
                              f"or hide this with --skip plugin.{plugin}.",
                          check_id=f"plugin.{plugin}")
        out.append(Check(id=f"plugin.{plugin}", title=f"Plugin {plugin}", run=lambda ctx, f=finding: [f],
                         plugin=plugin, timeout=5.0))
    return out


def plugin_error_results(errors: list[tuple[str, str]]) -> list[CheckResult]:
    """Results that report broken plugins, without running anything (see plugin_error_checks)."""
    out = []
    for check in plugin_error_checks(errors):
        findings = list(check.run(None))
        out.append(CheckResult(check, _status(findings), findings))
    return out


def summary(results: list[CheckResult]) -> dict:
    errors = sum(1 for r in results for f in r.findings if f.severity == Severity.ERROR)
    warnings = sum(1 for r in results for f in r.findings if f.severity == Severity.WARN)
    return {"errors": errors, "warnings": warnings}
