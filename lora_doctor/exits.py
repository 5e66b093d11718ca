"""How a process ended, said one way everywhere: the runner (the child's return code), the probe (the
target Python's), the log parser (what a log says about an exit) and the run history.

- `exit_code_of(returncode)`: the exit code a wrapper passes on (a death by signal N -> 128+N) and
  the signal;
- `exit_cause(code, signal=, killed=, paging=)`: an ExitCause from a code as a log or a shell shows
  it (negative = signal, 128+N = a shell's signal death, 0xC0000000+ = a Windows NTSTATUS);
- `from_returncode(returncode, stopped=)`: the ExitCause of a process we ran ourselves (Popen's
  returncode: negative = signal; never the 128+N guess);
- `describe_exit(returncode)`: its one-line description ('exit code 3', 'killed by signal 11
  (SIGSEGV)', 'Windows status 0xC0000005 access violation').
"""

from __future__ import annotations

import signal as _signal

from lora_doctor.model import ExitCause

# Windows NTSTATUS exit codes (shown unsigned) and POSIX signals worth naming.
NTSTATUS = {
    0xC0000005: "0xC0000005 access violation",
    0xC00000FD: "0xC00000FD stack overflow",
    0xC0000409: "0xC0000409 stack buffer overrun (fail-fast)",
    0xC000013A: "0xC000013A terminated by Ctrl+C",
    0xC0000017: "0xC0000017 out of memory (no memory)",
    0xC0000135: "0xC0000135 a DLL was not found",
    0xC000001D: "0xC000001D illegal instruction",
    0xC0000094: "0xC0000094 integer divide by zero",
}
SIGNALS = {1: "SIGHUP", 2: "SIGINT", 4: "SIGILL", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL",
           11: "SIGSEGV", 13: "SIGPIPE", 15: "SIGTERM"}
CTRL_C_CODES = (130, -2, 0xC000013A)  # how an interrupted run ends: 128+SIGINT, Popen's -2, Windows


def signal_name(number: int) -> str:
    """'SIGSEGV' for 11; this platform's name for others; 'signal' when none is known."""
    if number in SIGNALS:
        return SIGNALS[number]
    try:
        return _signal.Signals(number).name
    except ValueError:
        return "signal"


def exit_code_of(returncode: int) -> tuple[int, int | None]:
    """(the exit code a wrapper exits with, the signal number or None) from a Popen returncode."""
    if returncode < 0:
        return 128 + (-returncode), -returncode
    return returncode, None


def _describe(code: int | None, signal: int | None, ntstatus: str | None, paging: bool = False) -> str:
    parts = []
    if ntstatus:
        parts.append(f"Windows status {ntstatus}")
    if signal:
        parts.append(f"killed by signal {signal} ({signal_name(signal)})")
    if paging:
        parts.append("Windows could not commit memory: the paging file is too small")
    if code is not None and not ntstatus and not signal:
        parts.append(f"exit code {code}")
    return "; ".join(parts)


def _ntstatus(code: int) -> tuple[int, str | None]:
    unsigned = code & 0xFFFFFFFF if code < -255 else code
    if unsigned >= 0xC0000000:
        return unsigned, NTSTATUS.get(unsigned, f"0x{unsigned:08X}")
    return code, None


def exit_cause(code: int | None, *, signal: int | None = None, killed: bool = False,
               paging: bool = False) -> ExitCause:
    """An ExitCause from a code as a log shows it (negative = signal, 128+N = shell's signal, NTSTATUS)."""
    ntstatus = None
    if code is not None:
        code, ntstatus = _ntstatus(code)
        if ntstatus is None and code < 0 and signal is None:
            signal = -code
        elif ntstatus is None and 128 < code < 160 and signal is None and code - 128 in SIGNALS:
            signal = code - 128
    if killed and signal is None:
        signal = 9
    return ExitCause(code=code, signal=signal, ntstatus=ntstatus,
                     description=_describe(code, signal, ntstatus, paging))


def from_returncode(returncode: int | None, stopped: str = "") -> ExitCause:
    """The ExitCause of a process we ran (Popen's returncode): code is what a wrapper exits with
    (128+N for signal N); `stopped` says why we ended it ("interrupted", "nan" …)."""
    if returncode is None:
        return ExitCause(description="no exit code")
    code, signal = exit_code_of(returncode)
    ntstatus = None
    if signal is None:
        code, ntstatus = _ntstatus(code)
    cause = ExitCause(code=code, signal=signal, ntstatus=ntstatus, description=_describe(code, signal, ntstatus))
    if stopped:
        cause.description += f" (stopped by lora-doctor: {stopped})"
    return cause


def describe_exit(returncode: int | None) -> str:
    """'exit code 3', 'killed by signal 11 (SIGSEGV)', 'Windows status 0xC0000005 access violation'."""
    return from_returncode(returncode).description
