"""The shared vocabulary: findings of checks, failures read from logs, diagnoses."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping


class Severity(enum.IntEnum):
    """How bad a finding is; rendered ✓ · i · ! · ✗ like flutter doctor."""

    OK = 0
    INFO = 1
    WARN = 2
    ERROR = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    """One thing a check saw.

    `fix` says what to do in a sentence; `fix_command` is the exact command when there is one;
    `cause` is the id of the known failure this finding predicts (the signature id), or None.
    `facts` are shown with `-v` only.
    """

    severity: Severity
    summary: str
    detail: str = ""
    fix: str = ""
    fix_command: str = ""
    cause: str | None = None
    facts: Mapping[str, object] = field(default_factory=dict)
    check_id: str = ""

    def to_json(self) -> dict:
        return {
            "check_id": self.check_id,
            "severity": self.severity.label,
            "summary": self.summary,
            "detail": self.detail,
            "fix": self.fix,
            "fix_command": self.fix_command,
            "cause": self.cause,
            "facts": dict(self.facts),
        }


class CheckSkipped(Exception):
    """Raised by a check whose input failed (e.g. the dataset TOML another check reports as broken):
    the check shows as skipped (–) with str(exc) as the reason, never as an empty all-clear."""


# When a check applies: always, or only when the context knows a command / a model / a dataset.
APPLIES = ("always", "command", "model", "dataset")


@dataclass(frozen=True)
class Check:
    """A check a plugin contributes: `run(context)` yields Findings.

    `id` is `family.name`. `applies` is one of APPLIES. `timeout` is the check's time budget in
    seconds; one that overruns is reported as timed out while the others go on.
    """

    id: str
    title: str
    run: Callable[["object"], Iterable[Finding]]
    applies: str = "always"
    timeout: float = 15.0
    plugin: str = ""

    def __post_init__(self):
        if self.applies not in APPLIES:
            raise ValueError(f"Check {self.id}: applies={self.applies!r} is not one of {', '.join(APPLIES)}")
        if "." not in self.id:
            raise ValueError(f"Check id {self.id!r} is not family.name (e.g. myteam.output_dir)")


@dataclass(frozen=True)
class Frame:
    """One traceback frame."""

    file: str
    line: int | None
    function: str


@dataclass
class ExitCause:
    """How the process ended, as far as the log (or the runner) tells."""

    code: int | None = None
    signal: int | None = None
    ntstatus: str | None = None  # e.g. "0xC0000005 access violation"
    description: str = ""

    def to_json(self) -> dict:
        return {"code": self.code, "signal": self.signal, "ntstatus": self.ntstatus,
                "description": self.description}


@dataclass
class Failure:
    """What logparse extracted: one exception (or an exit without one) with its chain."""

    exception: str  # as printed, e.g. "torch.OutOfMemoryError"; "" for an exit without traceback
    message: str
    frames: list[Frame] = field(default_factory=list)
    rank: int | None = None
    causes: list["Failure"] = field(default_factory=list)  # chained exceptions, earliest first
    line_no: int = 0  # index of the exception line in the normalized log
    is_wrapper: bool = False  # CalledProcessError / ChildFailedError: not a root cause

    @property
    def exception_name(self) -> str:
        return self.exception.rsplit(".", 1)[-1]

    def to_json(self) -> dict:
        return {
            "exception": self.exception,
            "message": self.message,
            "frames": [{"file": f.file, "line": f.line, "function": f.function} for f in self.frames],
            "rank": self.rank,
            "line": self.line_no,
            "wrapper": self.is_wrapper,
        }


@dataclass
class Diagnosis:
    """A named cause for a failure, with the fix."""

    signature_id: str
    title: str
    confidence: float
    evidence: list[str] = field(default_factory=list)
    why: str = ""
    fix: list[str] = field(default_factory=list)
    fix_command: str = ""
    refs: list[str] = field(default_factory=list)
    severity: str = "error"
    source: str = ""

    def to_json(self) -> dict:
        return {
            "id": self.signature_id,
            "title": self.title,
            "confidence": round(self.confidence, 3),
            "evidence": list(self.evidence),
            "why": self.why,
            "fix": list(self.fix),
            "fix_command": self.fix_command,
            "refs": list(self.refs),
            "severity": self.severity,
            "source": self.source,
        }
