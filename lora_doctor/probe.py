"""Probe the target interpreter: one subprocess, a timeout, JSON facts back."""

from __future__ import annotations

import json
import os
import subprocess
import time
from importlib import resources

MARKER = "@@LORA_DOCTOR_PROBE@@"
DEFAULT_TIMEOUT = 60.0


def probe_script_path() -> str:
    return str(resources.files("lora_doctor.data").joinpath("probe_target.py"))


def failed(python: str, error: str, *, timed_out: bool = False, seconds: float = 0.0) -> dict:
    """The facts of a probe that did not answer: every section empty, the reason in `probe`."""
    return {"python": {"executable": python}, "packages": {}, "torch": {"imported": False, "error": None},
            "probe": {"ok": False, "error": error, "timed_out": timed_out, "seconds": round(seconds, 3)}}


def run_probe(python: str, timeout: float = DEFAULT_TIMEOUT, cwd: str | None = None) -> dict:
    """Run the probe in `python`; never raises, never waits longer than `timeout`."""
    started = time.monotonic()
    env = dict(os.environ, PYTHONIOENCODING="utf-8", PYTHONDONTWRITEBYTECODE="1")
    try:
        proc = subprocess.run([python, probe_script_path()], capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, cwd=cwd, env=env)
    except subprocess.TimeoutExpired:
        return failed(python, f"the probe did not answer within {timeout:.0f} s (importing torch hangs?)",
                      timed_out=True, seconds=time.monotonic() - started)
    except OSError as exc:
        return failed(python, f"cannot run {python}: {exc.strerror or exc}", seconds=time.monotonic() - started)
    seconds = time.monotonic() - started
    out = proc.stdout.decode("utf-8", "replace")
    _, sep, payload = out.rpartition(MARKER)
    if not sep:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        reason = err[-1] if err else f"exit code {proc.returncode}"
        return failed(python, f"the probe crashed ({reason})", seconds=seconds)
    try:
        facts = json.loads(payload.strip().splitlines()[0])
    except (ValueError, IndexError) as exc:
        return failed(python, f"the probe printed garbage ({exc})", seconds=seconds)
    facts["probe"] = {"ok": True, "error": None, "timed_out": False, "seconds": round(seconds, 3),
                      "exit_code": proc.returncode}
    return facts
