"""Ask `nvidia-smi` (with a short timeout) which NVIDIA GPUs and driver this machine has.

Used where torch cannot say (a CPU-only build, CUDA not available): it tells a machine
without an NVIDIA GPU from a torch that cannot use the one that is there.
"""

from __future__ import annotations

import os
import re
import shutil

DEFAULT_TIMEOUT = 5.0
TIMEOUT_ENV = "LORA_DOCTOR_NVIDIA_SMI_TIMEOUT"

_DRIVER = re.compile(r"Driver Version:\s*([\d.]+)")
_CUDA = re.compile(r"CUDA Version:\s*([\d.]+)")
# "|   0  NVIDIA GeForce RTX 3090     On  |" (Linux), "... WDDM  |" (Windows)
_ROW = re.compile(r"^\|\s+(\d+)\s+(.+?)\s+(?:On|Off|WDDM|TCC|MCDM)\s+\|", re.M)
_MEM = re.compile(r"(\d+)MiB\s*/\s*(\d+)MiB")


def parse(text: str) -> dict:
    """Driver version, the driver's highest CUDA version and the GPUs from plain `nvidia-smi` output."""
    gpus = [{"index": int(m.group(1)), "name": m.group(2).strip()} for m in _ROW.finditer(text)]
    for gpu, mem in zip(gpus, _MEM.finditer(text)):
        gpu["memory_mib"] = int(mem.group(2))
    driver, cuda = _DRIVER.search(text), _CUDA.search(text)
    return {"driver_version": driver.group(1) if driver else None,
            "cuda_version": cuda.group(1) if cuda else None, "gpus": gpus}


def query(env=None, timeout: float | None = None) -> dict:
    """{"found", "ok", "error", "timed_out", "driver_version", "cuda_version", "gpus"}; never raises or hangs."""
    from lora_doctor.subproc import run_bounded

    env = dict(os.environ if env is None else env)
    if timeout is None:
        try:
            timeout = float(env.get(TIMEOUT_ENV, DEFAULT_TIMEOUT))
        except ValueError:
            timeout = DEFAULT_TIMEOUT
    base = {"found": False, "ok": False, "error": None, "timed_out": False, "driver_version": None,
            "cuda_version": None, "gpus": []}
    exe = shutil.which("nvidia-smi", path=env.get("PATH", os.defpath))
    if not exe:
        return base
    got = run_bounded([exe], timeout, env=env)
    base.update(found=True, path=exe)
    if got.timed_out:
        return {**base, "timed_out": True, "error": f"nvidia-smi did not answer within {timeout:g} s"}
    text = got.stdout.decode("utf-8", "replace")
    if got.returncode != 0:
        why = (got.stderr or got.stdout).decode("utf-8", "replace").strip().splitlines()
        return {**base, "error": (why[0] if why else got.error or f"exit code {got.returncode}")[:300]}
    return {**base, "ok": True, **parse(text)}
