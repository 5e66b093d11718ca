"""Every installed distribution of the target interpreter (name -> version) and the declared
requirements of the ones that matter, for when the probe's own answer did not arrive (a torch import
that crashed the interpreter): the probe script again, without torch; nothing imported."""

from __future__ import annotations

import threading

from lora_doctor.subproc import run_bounded
from lora_doctor.target.probe import WITH_REQUIRES

TIMEOUT = 20.0

_cache: dict[str, dict] = {}
_lock = threading.Lock()


def query(python: str, timeout: float | None = None) -> dict:
    """{"dists": {canonical name: version}, "requires": {name: [requirement strings]}, "error": str}.

    Never raises; on failure the dicts are empty and `error` says why. Cached per interpreter."""
    with _lock:
        if python in _cache:
            return _cache[python]
        from lora_doctor.target.probe import DISTS_MARKER, marked_payload, probe_script_path

        got = run_bounded([python, probe_script_path(), "--no-torch", *WITH_REQUIRES],
                          TIMEOUT if timeout is None else timeout)
        data = marked_payload(got.stdout.decode("utf-8", "replace"), DISTS_MARKER)
        result = {"dists": {}, "requires": {}, "error": ""}
        if got.error or got.timed_out or data is None:
            result["error"] = got.error or ("no answer within the time limit" if got.timed_out else
                                            (got.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1])
        else:
            try:
                if isinstance(data, ValueError):
                    raise data
                result.update(dists=dict(data.get("dists", {})), requires=dict(data.get("requires", {})))
            except (TypeError, ValueError) as exc:
                result["error"] = f"unreadable answer ({exc})"
        _cache[python] = result
        return result
