"""Run the training command as a child: its bytes to our stdout and stderr unchanged, a redacted log,
live lines.

POSIX: through a pseudo-terminal when our stdout is a terminal (colours and progress bars look as
without us; the child's stderr shares it, unless our stderr is not that terminal: `2> err.txt`),
else through two pipes, stdout to our stdout and stderr to our stderr; the child leads its own
process group, signals we receive are forwarded to that group, and a watchdog process (plus, on
Linux, PR_SET_PDEATHSIG) ends the group if we die without cleaning up (`kill -9`). Windows: one
pipe for stdout+stderr and a new process group.
What happens to each chunk besides the copy (the log, the watcher) is in stream.py.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from lora_doctor.exits import exit_code_of
from lora_doctor.run.stream import LineWatcher, LogWriter

POSIX = os.name == "posix"
READ_SIZE = 1 << 20
SMALL_READ = 1 << 16  # while output is ordinary: no 1 MiB buffer (an mmap + mremap + munmap) per line
BATCH_BELOW = 1 << 14  # after a read this big (but not a full one), pause: a flood then costs few big reads
BATCH_PAUSE = 0.002  # seconds; far below what a person notices, far below filling a 1 MiB pipe
PIPE_SIZE = 1 << 20  # Linux: a bigger pipe buffer means fewer wake-ups per MB of output
IDLE_CHECK = 0.5  # seconds between looks at whether the child's group is gone, while it is quiet
QUIET = 0.2  # after the group is gone: stop reading at the first quiet moment this long
DRAIN_LIMIT = 2.0  # ... or this long after it, whatever still holds the pipe open
WIDE_COLUMNS = "200"
ORPHAN_GRACE = 2.0  # seconds the group may outlive the child before it is terminated
KILL_GRACE = 3.0
WATCHDOG_GRACE = 5  # seconds between the watchdog's SIGTERM and SIGKILL of an orphaned group
# Started right after the child: holds the read end of a pipe only we write to. We end it with
# "done"; if we die first (kill -9), the pipe reads EOF and the watchdog ends the child's group.
WATCHDOG = ("import os,signal,sys,time\ng=int(sys.argv[1])\n"
            "if os.read(0,8)[:4]==b'done':sys.exit(0)\n"
            "for s in (signal.SIGTERM,signal.SIGKILL):\n"
            " try:os.killpg(g,s)\n except OSError:sys.exit(0)\n"
            f" time.sleep({WATCHDOG_GRACE})\n")


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


def child_env(env: dict | None, pipe_mode: bool) -> dict:
    """The child's environment: ours (or `env`) + PYTHONUNBUFFERED=1, and a wide COLUMNS for pipes."""
    out = dict(os.environ if env is None else env)
    out["PYTHONUNBUFFERED"] = "1"
    if pipe_mode and not out.get("COLUMNS"):
        out["COLUMNS"] = WIDE_COLUMNS  # rich would otherwise fold sd-scripts' log records at 80
    return out


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
        except BlockingIOError:  # a non-blocking stdout (another program set O_NONBLOCK on our tty)
            _wait_writable(fd)
            continue
        except OSError:
            return False
        view = view[n:]
    return True


def _wait_writable(fd: int) -> None:
    import select

    try:
        select.select([], [fd], [], 1.0)
    except (OSError, ValueError):
        time.sleep(0.01)


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
                 fragments: tuple[bytes, ...] = (), hint_stream=None, on_spawn: Callable[[], None] | None = None,
                 stderr_fd: int | None = None):
        self.argv = argv
        self.cwd = cwd
        self.stdout_fd = sys.stdout.fileno() if stdout_fd is None else stdout_fd
        self.stderr_fd = _stderr_fd() if stderr_fd is None else stderr_fd
        if use_pty is None:
            use_pty = POSIX and os.isatty(self.stdout_fd)
        self.use_pty = bool(use_pty) and POSIX
        # the child's stderr keeps its own pipe to our stderr (POSIX), except in a pty when our
        # stderr is that same terminal; Windows: one pipe for both (no poll() on pipes there)
        self.split_stderr = POSIX and not (self.use_pty and _same_terminal(self.stdout_fd, self.stderr_fd))
        self.env = child_env(env, pipe_mode=not self.use_pty)
        self.log_path = log_path
        self.on_line = on_line
        self.fragments = fragments
        self.hint_stream = hint_stream or sys.stderr
        self.on_spawn = on_spawn  # called once the child runs (work that must not delay its start)
        self.proc: subprocess.Popen | None = None
        self.interrupts = 0
        self.stopped = ""
        self.hints: list[str] = []
        self._seen_hints: set[str] = set()
        self._child_done = threading.Event()
        self._group_gone = threading.Event()
        self._master: int | None = None
        self._watchdog = None
        self._watching = True

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
            from lora_doctor.redact import redact_text

            lines = redact_text(text).splitlines() or [""]
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
    def _spawn(self) -> list[_Stream]:
        """Start the child; the streams to read: stdout (and stderr when it has its own pipe)."""
        kwargs: dict = dict(cwd=self.cwd, env=self.env, bufsize=0)
        if POSIX:
            kwargs["start_new_session"] = True
            pdeathsig = _pdeathsig_setter()
            if pdeathsig is not None:
                kwargs["preexec_fn"] = pdeathsig
        else:
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        streams: list[_Stream] = []
        to_close: list[int] = []
        try:
            if self.use_pty:
                master, slave = _open_pty(self.stdout_fd)
                to_close.append(slave)
                streams.append(_Stream(master, self.stdout_fd, 1))
                self._master = master
                err = slave
                if self.split_stderr:  # our stderr is not the terminal: the child's stays apart too
                    err_read, err = os.pipe()
                    to_close.append(err)
                    streams.append(_Stream(err_read, self.stderr_fd, 2))
                self.proc = subprocess.Popen(self.argv, stdout=slave, stderr=err, close_fds=True, **kwargs)
            else:
                read_fd, write_fd = os.pipe()
                to_close.append(write_fd)
                _grow_pipe(write_fd)
                streams.append(_Stream(read_fd, self.stdout_fd, 1))
                err = write_fd
                if self.split_stderr:
                    err_read, err = os.pipe()
                    to_close.append(err)
                    _grow_pipe(err)
                    streams.append(_Stream(err_read, self.stderr_fd, 2))
                self.proc = subprocess.Popen(self.argv, stdout=write_fd, stderr=err, **kwargs)
        except BaseException:
            for stream in streams:
                os.close(stream.fd)
            self._master = None
            raise
        finally:
            for fd in to_close:
                os.close(fd)
        self._watchdog = _start_watchdog(self.proc.pid)
        return streams

    def _reap(self) -> None:
        """Wait for the child; then make sure nothing of its process group outlives it."""
        try:
            self._reap_group()
        finally:
            self._group_gone.set()

    def _reap_group(self) -> None:
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
                if not _group_alive(self.proc.pid):
                    return
                time.sleep(0.05)

    def run(self) -> RunResult:
        """Launch, copy the output until the child and its group are done; never raises for the
        child's own failures (a command that cannot be started raises OSError)."""
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
                if sig is not None:
                    handlers[sig] = signal.signal(sig, self._on_signal)
            if POSIX and self.use_pty:
                handlers[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, lambda *_: self._resize())
        started = time.time()
        log = LogWriter(self.log_path)
        if log.error:
            self.hint(f"cannot write the log {self.log_path}: {log.error}; the run goes on without it")
        streams: list[_Stream] = []
        try:
            streams = self._spawn()
            for stream in streams:
                stream.watcher = LineWatcher(self._offer if self.on_line else None, self.fragments)
            reaper = threading.Thread(target=self._reap, daemon=True, name="lora-doctor-reaper")
            reaper.start()
            if self.on_spawn is not None:
                self.on_spawn()
            try:
                self._pump(streams, log)
            finally:
                for stream in streams:
                    os.close(stream.fd)
                self._master = None
            for stream in streams:
                stream.watcher.flush()
            reaper.join()
        finally:
            _stop_watchdog(self._watchdog)
            log.close()
            for sig, old in handlers.items():
                signal.signal(sig, old)
        if log.error:
            self.hint(f"the log is incomplete: {log.error}")
        code, sig = exit_code_of(self.proc.returncode)
        found = next((s.watcher.found for s in streams if s.watcher.found), b"")
        return RunResult(code, self.proc.returncode, sig, started, time.time(),
                         "pty" if self.use_pty else "pipe", self.stopped, list(self.hints),
                         found.decode("utf-8", "replace"))

    def _pump(self, streams: list[_Stream], log: LogWriter) -> None:
        """Copy the child's output to our stdout/stderr, the log and the watchers until its end: EOF
        on every stream, or (when something that left the process group still holds a pipe) a
        quiet moment after the group is gone."""
        poll = _Poll([s.fd for s in streams])
        open_streams = {s.fd: s for s in streams}
        gone_at = None
        while open_streams:
            if gone_at is None and self._group_gone.is_set():
                gone_at = time.monotonic()
            if gone_at is not None and time.monotonic() - gone_at > DRAIN_LIMIT:
                return
            ready = poll.ready(QUIET if gone_at else IDLE_CHECK)
            if not ready:
                if gone_at is not None:
                    return
                continue
            pause = False
            for fd in ready:
                stream = open_streams.get(fd)
                if stream is None:
                    continue
                try:
                    data = os.read(fd, stream.size)
                except InterruptedError:
                    continue
                except OSError:  # EIO: the pty's last slave closed
                    data = b""
                if not data:
                    poll.drop(fd)
                    del open_streams[fd]
                    continue
                self._deliver(stream, data, log)
                stream.size = READ_SIZE if len(data) >= BATCH_BELOW else SMALL_READ
                pause = pause or BATCH_BELOW <= len(data) < READ_SIZE
            if pause:
                time.sleep(BATCH_PAUSE)  # output is streaming in: let it gather into fewer, bigger reads

    def _deliver(self, stream: _Stream, data: bytes, log: LogWriter) -> None:
        if stream.out_ok:
            stream.out_ok = _write_all(stream.out_fd, data)
            if not stream.out_ok:
                which = "stdout" if stream.channel == 1 else "stderr"
                self.hint(f"our {which} was closed (`| head`?): the training goes on, its output goes "
                          "to the log only")
        if self._watching:
            try:
                log.write(data, stream.channel)
                stream.watcher.feed(data)
            except Exception as exc:  # a bug of ours must not cost the training its output
                self._watching = False
                self.hint(f"internal error, the log and live hints stop here ({type(exc).__name__}: {exc}); "
                          "the training and its output go on")

    def _resize(self) -> None:
        master = self._master
        if master is not None:
            _copy_window_size(self.stdout_fd, master)
            self._signal_group(signal.SIGWINCH)  # the pty is not the child's controlling terminal


def _group_alive(pgid: int) -> bool:
    """True while a process of the group runs. Zombies do not count: in a container whose PID 1
    reaps nothing, a dead grandchild stays a zombie for good (and holds neither GPU nor files)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return True  # no /proc (macOS): the group answers, so it is there
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


class _Poll:
    """Wait until some of the fds are readable, with a timeout (POSIX); elsewhere every fd is always
    'ready' (a blocking read: Windows has one pipe)."""

    def __init__(self, fds: list[int]):
        import select

        self.fds = list(fds)
        self._poll = select.poll() if hasattr(select, "poll") else None
        if self._poll is not None:
            for fd in self.fds:
                self._poll.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)

    def ready(self, timeout: float) -> list[int]:
        if self._poll is None:
            return list(self.fds)
        try:
            return [fd for fd, _ in self._poll.poll(timeout * 1000)]
        except InterruptedError:
            return []

    def drop(self, fd: int) -> None:
        if fd in self.fds:
            self.fds.remove(fd)
            if self._poll is not None:
                self._poll.unregister(fd)


@dataclass
class _Stream:
    """One output stream of the child: where it is read, where it goes, its log channel."""

    fd: int
    out_fd: int
    channel: int  # 1 stdout, 2 stderr
    size: int = SMALL_READ
    out_ok: bool = True
    watcher: LineWatcher | None = None


def _stderr_fd() -> int:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return 2


def _same_terminal(a: int, b: int) -> bool:
    """Both fds are the same terminal (a pty child then writes both streams to it)."""
    try:
        if not (os.isatty(a) and os.isatty(b)):
            return False
        sa, sb = os.fstat(a), os.fstat(b)
        return (sa.st_dev, sa.st_ino, sa.st_rdev) == (sb.st_dev, sb.st_ino, sb.st_rdev)
    except OSError:
        return False


def _pdeathsig_setter():
    """Linux: a preexec_fn that has the kernel send the child SIGTERM when we die (even by kill -9).
    The ctypes call is prepared here, before the fork; None elsewhere or when it cannot be."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError, ImportError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)

    def set_pdeathsig():
        prctl(pr_set_pdeathsig, sigterm)
        if os.getppid() != parent:  # we died between the fork and the prctl
            os.kill(os.getpid(), sigterm)

    return set_pdeathsig


def _start_watchdog(pgid: int):
    """POSIX: a small process outside the child's group that ends that group (SIGTERM, then SIGKILL
    after WATCHDOG_GRACE s) once our end of its pipe closes without "done": when we are killed.
    Returns (process, write fd) or None."""
    if not POSIX:
        return None
    try:
        read_fd, write_fd = os.pipe()
    except OSError:
        return None
    try:
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", WATCHDOG, str(pgid)], stdin=read_fd,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    except OSError:
        os.close(write_fd)
        return None
    finally:
        os.close(read_fd)
    return proc, write_fd


def _stop_watchdog(watchdog) -> None:
    """Our run ended normally: the watchdog goes away without touching anything."""
    if watchdog is None:
        return
    proc, write_fd = watchdog
    try:
        os.write(write_fd, b"done")
    except OSError:
        pass
    finally:
        os.close(write_fd)
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
