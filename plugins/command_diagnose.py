"""Builtin plugin: when the log shows only that the run failed (accelerate's CalledProcessError
with the training command, a GUI's echo of the command before a cut), the command is the evidence:
the same static option checks `lora-doctor env -- CMD` runs (plugins/sdscripts_args.py: names
against the options table, values, formats, quoting, combinations) name what sd-scripts would have
stopped on.

The exit status has to fit the finding: argparse rejects a command with status 2
(argparse.ArgumentParser.error), sd-scripts' own checks raise (status 1); a crash status (a
signal, a Windows NTSTATUS) is not an option problem.
"""

from __future__ import annotations

from lora_doctor.hookspecs import hookimpl
from lora_doctor.model import Diagnosis, Severity

ARGPARSE_STATUS = 2
RAISED_STATUS = 1


def _argparse_level(finding) -> bool:
    """A finding argparse itself would stop on (exit status 2)."""
    text = f"{finding.detail} {finding.summary}"
    return "argparse" in text or "unrecognized arguments" in text or "ambiguous" in text


def _fits(finding, code: int | None) -> bool:
    if code is None:
        return True
    if finding.cause == "args.trailing_backslash_escapes_quote":
        return code in (ARGPARSE_STATUS, RAISED_STATUS)
    return code == (ARGPARSE_STATUS if _argparse_level(finding) else RAISED_STATUS)


def _failed(failure, postmortem) -> bool:
    """The log shows the run failed, without saying why: a wrapper, a cut traceback, an exit status."""
    exit_ = getattr(postmortem, "exit", None)
    if exit_ is not None and (exit_.code or exit_.signal or exit_.ntstatus):
        return True
    return failure is not None and (failure.is_wrapper or (not failure.exception and not failure.message))


@hookimpl
def lora_doctor_diagnose(failure, postmortem):
    """The command's static option errors, when the log holds no error of its own."""
    if failure is not None and (failure.exception or failure.message) and not failure.is_wrapper:
        return []  # the log's own error explains the run; the signatures handle it
    launch = getattr(postmortem, "launch", None)
    if launch is None or not getattr(launch, "script", None) or not _failed(failure, postmortem):
        return []
    from lora_doctor.plugins.sdscripts_args import static_findings

    exit_ = postmortem.exit
    code = exit_.code if exit_ is not None and not (exit_.signal or exit_.ntstatus) else None
    if exit_ is not None and (exit_.signal or exit_.ntstatus):
        return []  # a crash, not an option sd-scripts refused
    where = "the command the log printed" if getattr(postmortem, "command_from_log", False) else "the command"
    out = []
    for f in static_findings(launch):
        if f.severity < Severity.ERROR or not f.cause or not _fits(f, code):
            continue
        evidence = [f"{where}: {f.summary}"]
        if exit_ is not None and exit_.description:
            evidence.append(f"exit: {exit_.description}")
        out.append(Diagnosis(signature_id=f.cause, title=f.summary, confidence=0.75 if code is not None else 0.6,
                             evidence=evidence, why=f.detail, fix=[f.fix] if f.fix else [],
                             fix_command=f.fix_command, source="plugin command_diagnose"))
    return out
