"""Probe the target interpreter: one subprocess, a timeout, JSON facts back.

The facts (documented in docs/json.md, key `target`):
``{"python": {...}, "packages": {name: version|None}, "torch": {...}, "probe": {...},
"distributions": {canonical name: version}, "requires": {name: [requirement, ...]}}``
(the last two only when the probe got that far).
`probe.ok` is False when not even the interpreter's own facts came back; a torch import that
fails, hangs or crashes leaves `probe.ok` True and says so in `torch.error` / `torch.timed_out`.
"""

from __future__ import annotations

import json
import os
from importlib import resources

from lora_doctor.exits import describe_exit  # one description of how a process ended (lora_doctor/exits.py)
from lora_doctor.subproc import run_bounded

BASE_MARKER = "@@LORA_DOCTOR_PROBE@@"
TORCH_MARKER = "@@LORA_DOCTOR_TORCH@@"
DISTS_MARKER = "@@LORA_DOCTOR_DISTS@@"
DEFAULT_TIMEOUT = 60.0
# distributions whose declared requirements the probe also reports (target/packages.py uses them too)
WITH_REQUIRES = ("torch", "torchvision", "xformers", "transformers", "diffusers", "accelerate", "huggingface-hub",
                 "tokenizers", "safetensors", "bitsandbytes", "opencv-python", "lycoris-lora", "open-clip-torch")


def probe_script_path() -> str:
    return str(resources.files("lora_doctor.data").joinpath("probe_target.py"))


def failed(python: str, error: str, *, timed_out: bool = False, seconds: float = 0.0) -> dict:
    """The facts of a probe that did not answer: every section empty, the reason in `probe`."""
    return {"python": {"executable": python}, "packages": {},
            "torch": {"imported": False, "error": None, "unknown": True},
            "probe": {"ok": False, "error": error, "timed_out": timed_out, "seconds": round(seconds, 3),
                      "exit_code": None}}


def complete_facts(facts: dict, python: str = "") -> dict:
    """Preset facts (tests, `lora_doctor.testing`) with every section a check may read present."""
    out = dict(facts)
    out["python"] = {"executable": python, **out.get("python", {})}
    out.setdefault("packages", {})
    torch = dict(out.get("torch", {}))
    torch.setdefault("imported", "version" in torch)
    torch.setdefault("error", None)
    torch.setdefault("devices", [])
    torch.setdefault("cuda_available", bool(torch["devices"]))
    torch.setdefault("device_count", len(torch["devices"]))
    out["torch"] = torch
    out["probe"] = {"ok": True, "error": None, "timed_out": False, "seconds": 0.0, "exit_code": 0,
                    **out.get("probe", {})}
    return out


def marked_payload(out: str, marker: str):
    """The JSON object printed after the last `marker`, or None (absent), or a ValueError text."""
    _, sep, rest = out.rpartition(marker)
    if not sep:
        return None
    try:
        value = json.loads(rest.strip().splitlines()[0])
    except (ValueError, IndexError) as exc:
        return ValueError(str(exc))
    return value if isinstance(value, dict) else ValueError(f"expected an object, got {type(value).__name__}")


def _last_line(data: bytes) -> str:
    lines = [ln.strip() for ln in data.decode("utf-8", "replace").splitlines() if ln.strip()]
    return lines[-1][:500] if lines else ""


def run_probe(python: str, timeout: float = DEFAULT_TIMEOUT, cwd: str | None = None,
              env: dict | None = None) -> dict:
    """Run the probe in `python`; never raises, never waits much longer than `timeout`."""
    env = dict(os.environ if env is None else env, PYTHONIOENCODING="utf-8", PYTHONDONTWRITEBYTECODE="1")
    got = run_bounded([python, probe_script_path(), *WITH_REQUIRES], timeout, env=env, cwd=cwd)
    seconds = got.seconds
    if got.error:
        return failed(python, f"cannot run {python}: {got.error}", seconds=seconds)
    out = got.stdout.decode("utf-8", "replace")
    base = marked_payload(out, BASE_MARKER)
    if base is None:
        if got.timed_out:
            return failed(python, f"{python} did not answer within {timeout:g} s", timed_out=True, seconds=seconds)
        reason = _last_line(got.stderr) or describe_exit(got.returncode)
        if not out.strip() and got.returncode == 0:
            reason = "it printed nothing (is this a Python interpreter?)"
        return failed(python, f"the probe crashed: {reason}", seconds=seconds)
    if isinstance(base, ValueError):
        return failed(python, f"the probe printed garbage ({base})", seconds=seconds)
    facts = {"python": base.get("python", {}), "packages": base.get("packages", {})}
    torch = marked_payload(out, TORCH_MARKER)
    if isinstance(torch, dict):
        facts["torch"] = torch
    elif got.timed_out:
        facts["torch"] = {"imported": False, "timed_out": True,
                          "error": f"import torch did not finish within {timeout:g} s"}
    else:
        why = _last_line(got.stderr) or describe_exit(got.returncode)
        facts["torch"] = {"imported": False, "crashed": True,
                          "error": f"import torch crashed the interpreter ({describe_exit(got.returncode)}): {why}"}
    dists = marked_payload(out, DISTS_MARKER)
    if isinstance(dists, dict):  # the same shape lora_doctor.target.packages.query answers
        facts["distributions"] = dict(dists.get("dists") or {})
        facts["requires"] = dict(dists.get("requires") or {})
    facts["probe"] = {"ok": True, "error": None, "timed_out": got.timed_out, "seconds": round(seconds, 3),
                      "exit_code": got.returncode}
    return facts
