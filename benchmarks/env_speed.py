"""Time `lora-doctor env` against its floor, side by side, medians of several runs.

    python benchmarks/env_speed.py [--runs 7] [--python TARGET]

Measures, interleaved so machine noise hits every row alike:
  lora-doctor --version                        (target: < 150 ms)
  TARGET -c "import torch"                     (the floor: the probe has to import torch)
  TARGET -m torch.utils.collect_env            (what people run today)
  lora-doctor env --offline --python TARGET    (target: within 0.3 s of the bare import)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def lora_doctor_cmd() -> list[str]:
    script = Path(sys.executable).parent / ("lora-doctor.exe" if os.name == "nt" else "lora-doctor")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lora_doctor"]


def timed(argv: list[str], env) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, timeout=300)
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--python", default=sys.executable, help="the target interpreter (default: this one)")
    args = parser.parse_args()
    env = dict(os.environ, NO_COLOR="1", HF_HUB_OFFLINE="1")
    doctor = lora_doctor_cmd()
    rows = {
        "lora-doctor --version": doctor + ["--version"],
        'python -c "import torch"': [args.python, "-c", "import torch"],
        "python -m torch.utils.collect_env": [args.python, "-m", "torch.utils.collect_env"],
        "lora-doctor env --offline": doctor + ["env", "--offline", "--python", args.python],
    }
    times: dict[str, list[float]] = {name: [] for name in rows}
    for argv in rows.values():  # warm the file cache once
        timed(argv, env)
    for _ in range(args.runs):
        for name, argv in rows.items():
            times[name].append(timed(argv, env))
    med = {name: statistics.median(ts) for name, ts in times.items()}
    bare, env_row = 'python -c "import torch"', "lora-doctor env --offline"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"target: {args.python}   runs: {args.runs}   load average: {load:.2f}   (median / min / max, seconds)")
    for name, ts in times.items():
        print(f"  {name:36s} {med[name]:6.3f}  {min(ts):6.3f}  {max(ts):6.3f}")
    print(f"  env over the bare torch import:      {med[env_row] - med[bare]:+6.3f}  (goal: <= +0.300)")
    print(f"  the same, best runs (min - min):     {min(times[env_row]) - min(times[bare]):+6.3f}")
    print(f"  env vs collect_env:                  {med[env_row] - med['python -m torch.utils.collect_env']:+6.3f}"
          "  (goal: < 0)")
    print(f"  --version:                           {med['lora-doctor --version'] * 1000:6.0f} ms (goal: < 150 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
