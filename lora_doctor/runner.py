"""Run the training command as a child: bytes to stdout unchanged, a redacted log, live lines.

POSIX: through a pseudo-terminal when our stdout is a terminal (colours and progress bars look as
without us), else through one pipe for stdout+stderr; the child leads its own process group and
signals we receive are forwarded to that group. Windows: pipes and a new process group.
Memory is bounded: 64 KiB reads, a bounded partial line for the log and the watcher.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

POSIX = os.name == "posix"
READ_SIZE = 1 << 20
BATCH_BELOW = 1 << 14  # after a read this big (but not a full one), pause: a flood then costs few big reads
BATCH_PAUSE = 0.002  # seconds; far below what a person notices, far below filling a 1 MiB pipe
PIPE_SIZE = 1 << 20  # Linux: a bigger pipe buffer means fewer wake-ups per MB of output
MAX_LINE = 1 << 16  # a line longer than this is cut (for the log redaction and the watcher)
WIDE_COLUMNS = "200"
ORPHAN_GRACE = 2.0  # seconds the group may outlive the child before it is terminated
KILL_GRACE = 3.0

_ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
TAIL_BYTES = 8192  # of a read bigger than this, only the lines of its end are offered to the watcher
_SECRET_WORDS = (b"token", b"key", b"secret", b"password")


def strip_ansi(text: str) -> str:
    """Remove terminal escape sequences (colours, cursor moves) from a decoded line."""
    return _ANSI_RE.sub("", text) if "\x1b" in text else text


@dataclass
class RunResult:
    """How the child ended. `exit_code` is what the wrapper exits with (signal N -> 128+N)."""

    exit_code: int
    returncode: int
    signal: int | None
    started_at: float
    ended_at: float
    mode: str  # "pty" or "pipe"
    stopped: str = ""  # "" or why we ended it: "interrupted", "terminated", "nan"
    hints: list[str] = field(default_factory=list)
    silent_failure: str = ""  # a failure fragment seen in the output of a run that may exit 0


def exit_code_of(returncode: int) -> tuple[int, int | None]:
    """(exit code for us, signal number or None) from a Popen returncode."""
    if returncode < 0:
        return 128 + (-returncode), -returncode
    return returncode, None


def child_env(env: dict | None, pipe_mode: bool) -> dict:
    """The child's environment: ours (or `env`) + PYTHONUNBUFFERED=1, and a wide COLUMNS for pipes."""
    out = dict(os.environ if env is None else env)
    out["PYTHONUNBUFFERED"] = "1"
    if pipe_mode and not out.get("COLUMNS"):
        out["COLUMNS"] = WIDE_COLUMNS  # rich would otherwise fold sd-scripts' log records at 80
    return out


class LogWriter:
    """Writes the child's bytes to the log, secrets redacted line by line, in a thread of its own
    (file writes release the GIL, so the disk works while the next read is copied to stdout).

    A partial line is held back until its end arrives (bounded by MAX_LINE), so a token split
    across two reads is still redacted. Chunks without anything secret-looking skip the regexes.
    At most QUEUE chunks wait; a slow disk slows the child down instead of growing memory.
    A write error (disk full) ends the log, never the run: `error` says why.
    """

    QUEUE = 8

    def __init__(self, path: str | None):
        import queue

        self.fh = open(path, "wb") if path else None
        self.pending = b""
        self.error = ""
        self._queue: queue.Queue = queue.Queue(self.QUEUE)
        self._thread = None
        if self.fh is not None:
            self._thread = threading.Thread(target=self._drain, daemon=True, name="lora-doctor-log")
            self._thread.start()

    def write(self, data: bytes) -> None:
        if self._thread is not None:
            self._queue.put(data)

    def _drain(self) -> None:
        while True:
            data = self._queue.get()
            if data is None:
                break
            if not self.error:
                try:
                    self._write(data)
                except OSError as exc:
                    self.error = f"{exc.strerror or exc}"
        try:
            if self.pending and not self.error:
                self.fh.write(_redact_bytes(self.pending))
            self.fh.close()
        except OSError as exc:
            self.error = self.error or f"{exc.strerror or exc}"

    def _write(self, data: bytes) -> None:
        data = self.pending + data if self.pending else data
        cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        if cut == 0 and len(data) < MAX_LINE:
            self.pending = data
            return
        if cut == 0:
            cut = len(data)
        self.pending = data[cut:]
        self.fh.write(_redact_bytes(data[:cut]) if cut < len(data) else _redact_bytes(data))

    def close(self) -> None:
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join()
        self._thread = None


def _may_hold_secret(data: bytes) -> bool:
    """Cheap C-speed pre-test for redact_text's patterns (tokens, --*_token/--*key values)."""
    if b"_" not in data and b"--" not in data:  # single-byte searches are memchr-fast
        return False
    if b"hf_" in data or b"api_org_" in data:
        return True
    if b"--" not in data:
        return False
    low = data.lower()
    return any(w in low for w in _SECRET_WORDS)


def _redact_bytes(data: bytes) -> bytes:
    if not _may_hold_secret(data):
        return data
    from .redact import redact_text

    return redact_text(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


class LineWatcher:
    """Splits the stream into lines and offers them (ANSI-stripped) to `callback`.

    Every line is offered while output is ordinary; when one read brings more than TAIL_BYTES,
    only the lines of its last TAIL_BYTES are (bounded work, whatever the child prints).
    """

    def __init__(self, callback: Callable[[str], None] | None, fragments: tuple[bytes, ...] = ()):
        self.callback = callback
        self.pending = b""
        self.fragments = fragments
        self.found = b""
        self._tail = b""
        self._overlap = max((len(f) for f in fragments), default=1) - 1

    def feed(self, data: bytes) -> None:
        if self.fragments and not self.found:
            window = self._tail + data
            for frag in self.fragments:
                if frag in window:
                    self.found = frag
            self._tail = window[-self._overlap:] if self._overlap else b""
        if self.callback is None:
            return
        data = self.pending + data
        cut = max(data.rfind(b"\n"), data.rfind(b"\r")) + 1
        if cut == 0:
            self.pending = data[-MAX_LINE:]
            return
        self.pending = data[cut:][-MAX_LINE:]
        for raw in _lines_to_offer(data[:cut]):
            if raw:
                self.callback(strip_ansi(raw[:MAX_LINE].decode("utf-8", "replace")))

    def flush(self) -> None:
        if self.callback is not None and self.pending.strip():
            self.callback(strip_ansi(self.pending.decode("utf-8", "replace")))
        self.pending = b""


def _split_lines(block: bytes) -> list[bytes]:
    return block.replace(b"\r", b"\n").split(b"\n")


def _lines_to_offer(block: bytes) -> list[bytes]:
    """Every line of an ordinary read; of a flood (a read over TAIL_BYTES), the lines of its last
    TAIL_BYTES: a progress bar redraws itself and a crash ends the output, so both are seen."""
    if len(block) <= TAIL_BYTES:
        return _split_lines(block)
    tail = block[-TAIL_BYTES:]
    firsts = [e for e in (tail.find(b"\n"), tail.find(b"\r")) if e != -1]
    cut = min(firsts) + 1 if firsts else 0  # drop the partial first line of the tail
    return _split_lines(tail[cut:])


def _grow_pipe(fd: int) -> None:
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
    except (ImportError, OSError):
        pass  # not Linux, or over /proc/sys/fs/pipe-max-size: the default buffer works too


def _write_all(fd: int, data: bytes) -> bool:
    """Write every byte to fd; False once the reader has gone away (EPIPE), then we stop writing."""
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        except (BrokenPipeError, OSError):
            return False
        view = view[n:]
    return True


def _copy_window_size(src_fd: int, dst_fd: int) -> None:
    try:
        import fcntl
        import termios

        size = fcntl.ioctl(src_fd, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst_fd, termios.TIOCSWINSZ, size)
    except (OSError, ImportError):
        pass


def _open_pty(stdout_fd: int) -> tuple[int, int]:
    """A pty whose slave looks like our terminal, but with output post-processing off, so the
    child's bytes reach our terminal unchanged and our terminal adds its own CR/LF handling."""
    import pty
    import termios

    master, slave = pty.openpty()
    try:
        attrs = termios.tcgetattr(stdout_fd)
    except termios.error:
        attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST  # oflag: no \n -> \r\n here; the outer terminal does it
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    _copy_window_size(stdout_fd, slave)
    return master, slave


class Runner:
    """One run of the child. `run()` blocks until the child and its process group are gone."""

    def __init__(self, argv: list[str], *, cwd: str | None = None, env: dict | None = None,
                 log_path: str | None = None, on_line: Callable[[str], str | None] | None = None,
                 use_pty: bool | None = None, stdout_fd: int | None = None,
                 fragments: tuple[bytes, ...] = (), hint_stream=None):
        self.argv = argv
        self.cwd = cwd
        self.stdout_fd = sys.stdout.fileno() if stdout_fd is None else stdout_fd
        if use_pty is None:
            use_pty = POSIX and os.isatty(self.stdout_fd)
        self.use_pty = bool(use_pty) and POSIX
        self.env = child_env(env, pipe_mode=not self.use_pty)
        self.log_path = log_path
        self.on_line = on_line
        self.fragments = fragments
        self.hint_stream = hint_stream or sys.stderr
        self.proc: subprocess.Popen | None = None
        self.interrupts = 0
        self.stopped = ""
        self.hints: list[str] = []
        self._seen_hints: set[str] = set()
        self._child_done = threading.Event()

    # -- signals ------------------------------------------------------------------------
    def _signal_group(self, sig: int) -> None:
        proc = self.proc
        if proc is None:
            return
        try:
            if POSIX:
                os.killpg(proc.pid, sig)
            elif sig == getattr(signal, "CTRL_BREAK_EVENT", None) or sig == signal.SIGINT:
                proc.send_signal(signal.CTRL_BREAK_EVENT)
            else:
                proc.kill()
        except (ProcessLookupError, PermissionError, OSError):
            pass

    def _on_signal(self, signum, frame) -> None:
        if signum == signal.SIGINT:
            self.interrupts += 1
            self.stopped = self.stopped or "interrupted"
            if self.interrupts >= 2:
                self.hint("second Ctrl-C: killing the training process group")
                self._signal_group(signal.SIGKILL if POSIX else signal.SIGTERM)
            else:
                self._signal_group(signal.SIGINT)
        else:
            self.stopped = self.stopped or "terminated"
            self._signal_group(signum)

    def stop(self, why: str) -> None:
        """End the run as Ctrl-C would (SIGINT to the group, then SIGTERM, then SIGKILL)."""
        if self.stopped:
            return
        self.stopped = why
        self._signal_group(signal.SIGINT)

        def escalate():
            for sig, wait in ((signal.SIGTERM, KILL_GRACE), (getattr(signal, "SIGKILL", signal.SIGTERM), KILL_GRACE)):
                if self._child_done.wait(wait):
                    return
                self._signal_group(sig)

        threading.Thread(target=escalate, daemon=True).start()

    # -- hints --------------------------------------------------------------------------
    def hint(self, text: str) -> None:
        """Print a hint on stderr, on its own lines, prefixed [lora-doctor]; each text once."""
        if text in self._seen_hints:
            return
        self._seen_hints.add(text)
        self.hints.append(text)
        try:
            lines = text.splitlines() or [""]
            body = "\n".join(f"[lora-doctor] {ln}" for ln in lines)
            self.hint_stream.write(f"\n{body}\n")
            self.hint_stream.flush()
        except (OSError, ValueError, RuntimeError):  # RuntimeError: re-entrant write from a signal
            pass

    def _offer(self, line: str) -> None:
        try:
            hint = self.on_line(line) if self.on_line else None
        except Exception:
            hint = None
        if hint:
            self.hint(hint)

    # -- the run ------------------------------------------------------------------------
    def _spawn(self):
        kwargs: dict = dict(cwd=self.cwd, env=self.env, bufsize=0)
        if POSIX:
            kwargs["start_new_session"] = True
        else:
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        if self.use_pty:
            master, slave = _open_pty(self.stdout_fd)
            try:
                self.proc = subprocess.Popen(self.argv, stdout=slave, stderr=slave, close_fds=True, **kwargs)
            except BaseException:
                os.close(master)
                raise
            finally:
                os.close(slave)
            return master
        read_fd, write_fd = os.pipe()
        _grow_pipe(write_fd)
        try:
            self.proc = subprocess.Popen(self.argv, stdout=write_fd, stderr=write_fd, **kwargs)
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)
        return read_fd

    def _reap(self) -> None:
        """Wait for the child; then make sure nothing of its process group outlives it."""
        self.proc.wait()
        self._child_done.set()
        if not POSIX:
            return
        deadline = time.monotonic() + ORPHAN_GRACE
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None:
                self._signal_group(sig)
                deadline = time.monotonic() + KILL_GRACE
            while time.monotonic() < deadline:
                try:
                    os.killpg(self.proc.pid, 0)
                except (ProcessLookupError, PermissionError):
                    return
                time.sleep(0.05)

    def run(self) -> RunResult:
        """Launch, copy the output until the child and its group are done; never raises for the
        child's own failures (a command that cannot be started raises OSError)."""
        handlers = {}
        in_main = threading.current_thread() is threading.main_thread()
        if in_main:
            for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
                if sig is not None:
                    handlers[sig] = signal.signal(sig, self._on_signal)
            if POSIX and self.use_pty:
                handlers[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, lambda *_: self._resize())
        started = time.time()
        log = LogWriter(self.log_path)
        watcher = LineWatcher(self._offer if self.on_line else None, self.fragments)
        try:
            fd = self._spawn()
            self._master = fd if self.use_pty else None
            reaper = threading.Thread(target=self._reap, daemon=True, name="lora-doctor-reaper")
            reaper.start()
            out_ok = True
            while True:
                try:
                    data = os.read(fd, READ_SIZE)
                except InterruptedError:
                    continue
                except OSError:  # EIO: the pty's last slave closed
                    data = b""
                if not data:
                    break
                if out_ok:
                    out_ok = _write_all(self.stdout_fd, data)
                log.write(data)
                watcher.feed(data)
                if BATCH_BELOW <= len(data) < READ_SIZE:
                    time.sleep(BATCH_PAUSE)  # output is streaming in: let it gather into fewer, bigger reads
            watcher.flush()
            reaper.join()
            os.close(fd)
        finally:
            log.close()
            for sig, old in handlers.items():
                signal.signal(sig, old)
        code, sig = exit_code_of(self.proc.returncode)
        return RunResult(code, self.proc.returncode, sig, started, time.time(),
                         "pty" if self.use_pty else "pipe", self.stopped, list(self.hints),
                         watcher.found.decode("utf-8", "replace"))

    def _resize(self) -> None:
        master = getattr(self, "_master", None)
        if master is not None:
            _copy_window_size(self.stdout_fd, master)
