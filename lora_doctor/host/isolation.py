"""What keeps a plugin's behaviour inside the plugin: its output, its time, its exits.

- `plugin_code()` marks the running thread as running plugin code. While it is marked, what the
  plugin writes to `sys.stdout` goes to stderr (stdout carries `--json` objects and, for `run`, the
  training's own bytes), and `os._exit()` raises `PluginExit` instead of ending the doctor.
  The marks are per thread, so the doctor's own output on other threads is untouched, and a
  plugin thread abandoned after its budget stays marked.
- `call_bounded()` / `call_all()` run plugin functions in daemon threads and stop waiting at a
  deadline: an overrun is reported as `HookTimeout`, the thread is abandoned (never joined).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Callable, Iterable

_local = threading.local()
_install_lock = threading.Lock()


class HookTimeout(Exception):
    """A plugin function did not return within its budget (it is left running, unwatched)."""


class PluginExit(Exception):
    """A plugin called os._exit(); the doctor goes on."""


def in_plugin_code() -> bool:
    return getattr(_local, "depth", 0) > 0


class _StdoutForPlugins:
    """sys.stdout as seen by everyone: plugin threads write to stderr, the doctor to the real stdout."""

    def __init__(self, real):
        self._real = real

    def _target(self):
        return sys.stderr if in_plugin_code() else self._real

    def write(self, text):
        return self._target().write(text)

    def writelines(self, lines):
        return self._target().writelines(lines)

    def flush(self):
        return self._target().flush()

    @property
    def buffer(self):
        return self._target().buffer

    def __getattr__(self, name):  # encoding, isatty, fileno, errors, reconfigure … of the real stream
        return getattr(self._real, name)


def _guarded_exit(real_exit):
    pid = os.getpid()

    def _exit(status=0):
        # only in this process: a child forked by plugin code (multiprocessing) must still end
        if in_plugin_code() and os.getpid() == pid:
            raise PluginExit(f"os._exit({status}) called by plugin code")
        real_exit(status)

    _exit.lora_doctor_guard = True
    return _exit


def install() -> None:
    """Route plugin threads' stdout to stderr and turn their os._exit into an exception. Idempotent;
    also re-wraps a sys.stdout replaced since (a test's capture)."""
    with _install_lock:
        if not isinstance(sys.stdout, _StdoutForPlugins) and sys.stdout is not None:
            sys.stdout = _StdoutForPlugins(sys.stdout)
        if not getattr(os._exit, "lora_doctor_guard", False):
            os._exit = _guarded_exit(os._exit)


class plugin_code:
    """Context manager: the current thread runs plugin code until it exits."""

    def __enter__(self):
        install()
        _local.depth = getattr(_local, "depth", 0) + 1
        return self

    def __exit__(self, *exc):
        _local.depth -= 1
        return False


def _runner(fn: Callable, kwargs: dict, box: list) -> None:
    try:
        with plugin_code():
            box.append((True, fn(**kwargs)))
    except BaseException as exc:  # SystemExit/PluginExit from plugin code are its failures, not ours
        box.append((False, exc))


def call_all(calls: Iterable[tuple[str, Callable, dict]], budget: float, *, name: str = "hook"):
    """Run every (label, fn, kwargs) in its own daemon thread, all at once; wait at most `budget`
    seconds in total. Returns [(label, ok, result or exception)] in the given order; a call still
    running at the deadline gives (label, False, HookTimeout)."""
    started = []
    for label, fn, kwargs in calls:
        box: list = []
        thread = threading.Thread(target=_runner, args=(fn, kwargs, box), daemon=True,
                                  name=f"lora-doctor-plugin:{label}:{name}")
        thread.start()
        started.append((label, thread, box))
    deadline = time.monotonic() + budget
    out = []
    for label, thread, box in started:
        thread.join(max(0.0, deadline - time.monotonic()))
        if box:
            ok, value = box[0]
            if not ok and isinstance(value, KeyboardInterrupt):
                raise value
            out.append((label, ok, value))
        else:
            out.append((label, False, HookTimeout(f"{name} did not return within {budget:g} s")))
    return out


def call_bounded(fn: Callable, budget: float, *, name: str = "hook", **kwargs):
    """fn(**kwargs) in plugin code within `budget` seconds: its result, or raises what it raised
    (HookTimeout when it overran)."""
    ((_, ok, value),) = call_all([("call", fn, kwargs)], budget, name=name)
    if not ok:
        raise value
    return value


def describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()
