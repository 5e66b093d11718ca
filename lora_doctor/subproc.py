"""Run a subprocess that can never hang the doctor: a hard timeout that kills its whole tree.

`subprocess.run(timeout=…)` kills only the direct child; a grandchild (`sleep` inside a shell
script, a helper a tool forks) keeps the pipes open and `communicate()` then waits for it.
Here the child gets its own process group (POSIX) and the group is killed on timeout.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass


@dataclass
class Outcome:
    """What a bounded run produced; `stdout`/`stderr` are what arrived before a timeout too."""

    returncode: int | None  # None when it timed out or could not start
    stdout: bytes = b""
    stderr: bytes = b""
    timed_out: bool = False
    error: str = ""  # why it could not start (OSError), "" otherwise
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _kill_tree(proc: subprocess.Popen) -> None:
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        proc.kill()
    except OSError:
        pass


def run_bounded(argv: list[str], timeout: float, *, env=None, cwd=None, stdin=None) -> Outcome:
    """Run `argv`, capture both streams, return within about `timeout` seconds whatever it does."""
    started = time.monotonic()
    kwargs = {"start_new_session": True} if os.name == "posix" else {
        "creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL if stdin is None else subprocess.PIPE,
                                env=None if env is None else dict(env), cwd=cwd, **kwargs)
    except (OSError, ValueError) as exc:
        return Outcome(None, error=getattr(exc, "strerror", None) or str(exc),
                       seconds=time.monotonic() - started)
    try:
        out, err = proc.communicate(stdin, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        _kill_tree(proc)
        try:  # the group is dead, so the pipes close; still, never wait long for them
            out, err = proc.communicate(timeout=2)
        except subprocess.TimeoutExpired:
            out, err = exc.stdout or b"", exc.stderr or b""
        return Outcome(None, out or b"", err or b"", timed_out=True, seconds=time.monotonic() - started)
    return Outcome(proc.returncode, out, err, seconds=time.monotonic() - started)
