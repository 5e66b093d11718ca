"""Helpers for the `lora-doctor run` tests: run a child directly and through the wrapper, in pipes
or in a real pseudo-terminal, and look for leftover processes."""

from __future__ import annotations

import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from support import DATA

CHILDREN = DATA / "run_children"
TRUE = shutil.which("true") or "/bin/true"


def child(name: str) -> str:
    return str(CHILDREN / name)


def wrapper_argv(command: list[str], *extra: str, log: Path | None = None, checks: str = "args") -> list[str]:
    """`python -m lora_doctor run --force …`: checks limited to `checks`, a probe that ends at once."""
    argv = [sys.executable, "-m", "lora_doctor", "run", "--offline", "--python", TRUE]
    if checks:
        argv += ["--only", checks]
    if log is not None:
        argv += ["--log", str(log)]
    return [*argv, *extra, "--", *command]


def child_env(env: dict, **extra) -> dict:
    """The environment the wrapper gives its child, for the direct run we compare with."""
    out = dict(env, PYTHONUNBUFFERED="1", **extra)
    return out


def run_pipe(argv, env, cwd=None, timeout=60):
    """stdout+stderr of argv through one pipe (bytes), stderr of the wrapper kept apart when asked."""
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                          timeout=timeout)


def run_in_pty(argv, env, *, stderr=None, cols=132, rows=43, timeout=60) -> tuple[bytes, int]:
    """Run argv with a fresh pseudo-terminal as stdin/stdout (stderr too unless given): what the
    terminal receives, and the exit status."""
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=stderr if stderr is not None else slave,
                            env=env, start_new_session=True)
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.5)
        if not ready:
            if proc.poll() is not None and not select.select([master], [], [], 0.2)[0]:
                break
            continue
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    code = proc.wait(timeout=max(1, deadline - time.monotonic()))
    return b"".join(chunks), code


def alive(pid: int) -> bool:
    """True when pid runs (a zombie waiting for its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def wait_for_file(path: Path, timeout=20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def kill_quietly(*pids: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


class PtySession:
    """argv with a fresh pseudo-terminal as stdin/stdout (stderr to a file), read as it goes."""

    def __init__(self, argv, env, stderr, cols=132, rows=43):
        import fcntl
        import struct
        import termios

        self._fcntl, self._struct, self._termios = fcntl, struct, termios
        self.master, slave = os.openpty()
        self.resize(cols, rows, fd=slave)
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=stderr, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.output = b""

    def resize(self, cols, rows, fd=None):
        size = self._struct.pack("HHHH", rows, cols, 0, 0)
        self._fcntl.ioctl(self.master if fd is None else fd, self._termios.TIOCSWINSZ, size)

    def read_until(self, marker: bytes, timeout=20.0) -> bytes:
        deadline = time.monotonic() + timeout
        while marker not in self.output and time.monotonic() < deadline:
            if select.select([self.master], [], [], 0.2)[0]:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    break
                if not data:
                    break
                self.output += data
        assert marker in self.output, self.output
        return self.output

    def close(self, timeout=20) -> int:
        code = self.proc.wait(timeout=timeout)
        os.close(self.master)
        return code
