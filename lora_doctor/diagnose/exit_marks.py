"""How the training process ended, as the log shows it: the marks (accelerate's
`returned non-zero exit status N`, torch elastic's `exitcode`, a shell's `Killed`), signals, and
Windows NTSTATUS codes, which name a class of crash (0xC0000005 = 3221225477 = -1073741819: an
access violation).
"""

from __future__ import annotations

import re

from lora_doctor.diagnose.notable import PAGING_FILE_RE
from lora_doctor.exits import NTSTATUS, SIGNALS, exit_cause  # noqa: F401 - the tables and wording live in one place
from lora_doctor.model import ExitCause

_MARKERS = [
    (re.compile(r"returned non-zero exit status (-?\d+)", re.I), "code"),
    (re.compile(r"died with <Signals\.(SIG\w+): (\d+)>", re.I), "signal"),
    (re.compile(r"\bexitcode\s*:\s*(-?\d+)", re.I), "code"),
    (re.compile(r"Signal (\d+) \((SIG\w+)\) received by PID", re.I), "signal_num"),
    (re.compile(r"\b(?:exit(?:ed)? (?:with )?(?:code|status)|return code|exit_code)[:= ]+(-?\d+)", re.I), "code"),
    (re.compile(r"\b(32212\d{5}|-10737\d{5})\b"), "code"),
    (re.compile(r"\b0x(C0000[0-9A-F]{3})\b", re.I), "hex"),
    (re.compile(r"^\s*(?:\S+: line \d+:\s+\d+\s+)?Killed\b"), "killed"),
    (re.compile(r"Segmentation fault", re.I), "segv"),
    (PAGING_FILE_RE, "paging"),
]


def may_mark_exit(line: str) -> bool:
    """Cheap pre-test: can this line tell how the process ended?"""
    return ("exit" in line or "Killed" in line or "Signal" in line or "died with" in line or "egmentation" in line
            or "32212" in line or "-10737" in line or "1455" in line or "0xC0000" in line or "0xc0000" in line
            or "EXIT" in line or "Exit" in line or "paging" in line or "pagina" in line or "Auslagerung" in line
            or (not line.isascii() and any(w in line for w in _PAGING_WORDS)))


_PAGING_WORDS = ("подкачки", "页面文件", "分頁檔", "ページング", "페이징")


class ExitTracker:
    """Collects what the log's lines say about the exit; `cause()` names it."""

    def __init__(self):
        self.codes: list[int] = []
        self.signal: int | None = None
        self.killed = False
        self.paging = False
        self.paging_line: str | None = None  # the first line saying it, in any language

    def line(self, line: str) -> None:
        for rx, kind in _MARKERS:
            m = rx.search(line)
            if not m:
                continue
            if kind == "code":
                code = int(m.group(1))
                if code != 0:
                    self.codes.append(code)
            elif kind == "hex":
                self.codes.append(int(m.group(1), 16))
            elif kind == "signal":
                self.signal = int(m.group(2))
            elif kind == "signal_num":
                self.signal = int(m.group(1))
            elif kind == "killed":
                self.killed = True
            elif kind == "segv":
                self.signal = 11
            elif kind == "paging":
                self.paging = True
                if self.paging_line is None:
                    self.paging_line = line[:500]

    def cause(self) -> ExitCause | None:
        if not (self.codes or self.signal or self.killed or self.paging):
            return None
        codes = self.codes or [None]
        # the most telling code: an NTSTATUS or a signal over a plain status, the child's over 1
        code = max(codes, key=lambda c: 0 if c is None else 3 if abs(c) > 255 else 2 if c < 0 else 1 if c != 1 else 0.5)
        return exit_cause(code, signal=self.signal, killed=self.killed, paging=self.paging)
