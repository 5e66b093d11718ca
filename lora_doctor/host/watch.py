"""The plugins' `lora_doctor_watch_line` hooks, off the output copy loop.

`lora-doctor run` copies the training's output byte for byte; a hook that is slow (a sleep, a
network call) must never stall that copy. Each plugin gets a bounded queue and a worker thread:
`offer(line)` only appends to the queues (the oldest line is dropped when one is full), and the
worker calls the hook as plugin code. A call that takes longer than the budget, or raises, is
reported once through `deliver` and that plugin gets no more lines for this run.
"""

from __future__ import annotations

import collections
import threading
import time

from lora_doctor.host.isolation import describe, plugin_code

QUEUE_LINES = 256  # per plugin; beyond this the oldest waiting lines are dropped


class _Worker:
    def __init__(self, owner: "Watchers", name: str, function):
        self.owner, self.name, self.function = owner, name, function
        self.lines: collections.deque[str] = collections.deque(maxlen=QUEUE_LINES)
        self.wake = threading.Condition()
        self.busy_since: float | None = None
        self.off = False  # slow, raising, or closed: gets no more lines
        self.dropped = 0
        self.thread = threading.Thread(target=self._loop, daemon=True, name=f"lora-doctor-watch:{name}")
        self.thread.start()

    def offer(self, line: str) -> None:
        with self.wake:
            if len(self.lines) == self.lines.maxlen:
                self.dropped += 1
            self.lines.append(line)
            self.wake.notify()

    def idle(self) -> bool:
        with self.wake:
            return self.off or (not self.lines and self.busy_since is None)

    def _loop(self) -> None:
        with plugin_code():
            while True:
                with self.wake:
                    while not self.lines and not self.off:
                        self.wake.wait()
                    if self.off:
                        return
                    line = self.lines.popleft()
                    self.busy_since = time.monotonic()
                try:
                    hint = self.function(line=line, context=self.owner.context)
                except BaseException as exc:  # its SystemExit/os._exit too: the run goes on
                    self.busy_since = None
                    self.owner.disable(self, f"its lora_doctor_watch_line raised {describe(exc)}")
                    return
                self.busy_since = None
                if self.off:
                    return  # overran while this call ran: its late hint is not shown
                if isinstance(hint, str) and hint:
                    self.owner.deliver(hint)


class Watchers:
    """One worker per plugin implementing lora_doctor_watch_line."""

    def __init__(self, host, context, deliver, *, budget: float):
        self.context, self.budget = context, budget
        self._deliver = deliver
        self._lock = threading.Lock()
        self.problems: list[str] = []
        self.host = host
        self.workers = [_Worker(self, impl.plugin_name, _bind(impl))
                        for impl in host.hook_impls("lora_doctor_watch_line")]

    def deliver(self, text: str) -> None:
        try:
            self._deliver(text)
        except Exception:
            pass  # a hint that cannot be shown is lost, never the run

    def disable(self, worker: _Worker, why: str) -> None:
        with self._lock:
            if worker.off:
                return
            worker.off = True
            self.problems.append(f"plugin {worker.name}: {why}")
        with worker.wake:
            worker.lines.clear()
            worker.wake.notify()
        slow = getattr(self.host, "slow", None)
        if isinstance(slow, dict) and "longer than" in why:
            slow.setdefault(worker.name, why)
        self.deliver(f"plugin {worker.name}: {why}; its live hints are off for this run")

    def offer(self, line: str) -> None:
        """Queue one line for every plugin still watching; never blocks."""
        now = time.monotonic()
        for w in self.workers:
            if w.off:
                continue
            started = w.busy_since
            if started is not None and now - started > self.budget:
                self.disable(w, f"its lora_doctor_watch_line took longer than {self.budget:g} s on one line")
                continue
            w.offer(line)

    def close(self, timeout: float = 1.0) -> None:
        """Wait (at most `timeout` s) until the workers have seen what was offered, then stop them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(w.idle() for w in self.workers):
            time.sleep(0.01)
        now = time.monotonic()
        for w in self.workers:
            started = w.busy_since
            if not w.off and started is not None and now - started > self.budget:
                self.disable(w, f"its lora_doctor_watch_line took longer than {self.budget:g} s on one line")
        for w in self.workers:
            with w.wake:
                w.off = True
                w.wake.notify()


def _bind(impl):
    """The hook function called with only the arguments it declares."""
    names = tuple(impl.argnames)

    def call(**kwargs):
        return impl.function(**{k: kwargs[k] for k in names})

    return call
