"""Every installed distribution of the target interpreter (name -> version) and the declared
requirements of the ones that matter, for when the probe's own answer did not arrive (a torch import
that crashed the interpreter): the probe script again, without torch; nothing imported."""

from __future__ import annotations

import json
import threading

from .subproc import run_bounded

TIMEOUT = 20.0
MARKER = "@@LORA_DOCTOR_DISTS@@"  # probe_target.DISTS_MARKER
WITH_REQUIRES = ("torch", "torchvision", "xformers", "transformers", "diffusers", "accelerate", "huggingface-hub",
                 "tokenizers", "safetensors", "bitsandbytes", "opencv-python", "lycoris-lora", "open-clip-torch")

_cache: dict[str, dict] = {}
_lock = threading.Lock()


def query(python: str, timeout: float | None = None) -> dict:
    """{"dists": {canonical name: version}, "requires": {name: [requirement strings]}, "error": str}.

    Never raises; on failure the dicts are empty and `error` says why. Cached per interpreter."""
    with _lock:
        if python in _cache:
            return _cache[python]
        from .probe import probe_script_path

        got = run_bounded([python, probe_script_path(), "--no-torch", *WITH_REQUIRES],
                          TIMEOUT if timeout is None else timeout)
        out = got.stdout.decode("utf-8", "replace")
        _, sep, payload = out.rpartition(MARKER)
        result = {"dists": {}, "requires": {}, "error": ""}
        if got.error or got.timed_out or not sep:
            result["error"] = got.error or ("no answer within the time limit" if got.timed_out else
                                            (got.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1])
        else:
            try:
                data = json.loads(payload.strip().splitlines()[0])
                result.update(dists=dict(data.get("dists", {})), requires=dict(data.get("requires", {})))
            except (ValueError, IndexError, AttributeError) as exc:
                result["error"] = f"unreadable answer ({exc})"
        _cache[python] = result
        return result
