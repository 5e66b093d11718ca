"""Time the run history's hot paths; prints numbers (budgets: record < 50 ms, `history` < 300 ms).

    .venv/bin/python benchmarks/history_speed.py [--images 300] [--runs 10000]

1. record_run for a typical dataset (300 images + captions in 10_name/), fresh process state each
   time except the first (cold) call, which includes importing the history modules.
2. `lora-doctor history` as a whole CLI process against a database holding 10,000 runs, side by side
   with the baseline `lora-doctor --version` (interpreter start-up alone).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FACTS = {"python": {"version": "3.10.11", "executable": "/venv/bin/python"},
         "packages": {"torch": "2.1.2+cu121", "transformers": "4.44.0", "diffusers": "0.25.0",
                      "accelerate": "0.25.0", "huggingface_hub": "0.20.3", "xformers": "0.0.23.post1",
                      "bitsandbytes": "0.43.0", "safetensors": "0.4.2", "numpy": "1.26.4"},
         "torch": {"imported": True, "version": "2.1.2+cu121", "cuda_build": "12.1", "cuda_available": True,
                   "devices": [{"name": "NVIDIA GeForce RTX 3090", "capability": [8, 6]}]}}


def make_dataset(root: Path, images: int) -> Path:
    folder = root / "img" / "10_subject"
    folder.mkdir(parents=True)
    for i in range(images):
        (folder / f"{i:05d}.png").write_bytes(os.urandom(64))
        (folder / f"{i:05d}.txt").write_text("a photo of sks person")
    return root / "img"


def record(root: Path, i: int, exit_code: int = 0) -> dict:
    opts = {"pretrained_model_name_or_path": "runwayml/stable-diffusion-v1-5", "train_data_dir": "img",
            "output_dir": "out", "learning_rate": "1e-4", "network_module": "networks.lora", "network_dim": "32",
            "max_train_epochs": str(10 + i % 3), "mixed_precision": "fp16", "cache_latents": True}
    argv = ["accelerate", "launch", "train_network.py"] + [f"--{k}={v}" for k, v in opts.items()]
    return {"started_at": time.time(), "ended_at": time.time() + 600, "argv": argv, "script": "train_network.py",
            "options": opts, "cwd": str(root), "exit_code": exit_code, "exit_cause": f"exited with code {exit_code}",
            "diagnosis_id": None if exit_code == 0 else "cuda.out_of_memory", "diagnosis_title": None,
            "facts": FACTS, "dataset_dirs": ["img"], "model": opts["pretrained_model_name_or_path"],
            "log_path": str(root / "run.log"), "report_path": None}


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def time_cli(args: list[str], env: dict, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lora_doctor", *args], env=env, stdout=subprocess.DEVNULL,
                       check=True, timeout=60)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=7)
    opts = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.environ["LORA_DOCTOR_HOME"] = str(root / "home")
        make_dataset(root, opts.images)

        t = time.perf_counter()
        from lora_doctor import history  # noqa: E402  (timed: part of the runner's cost)

        first = history.record_run(record(root, 0))
        cold = time.perf_counter() - t
        warm = []
        for i in range(opts.repeat * 3):
            t = time.perf_counter()
            history.record_run(record(root, i))
            warm.append(time.perf_counter() - t)
        print(f"record_run, {opts.images} images + captions: cold (import + create db) {ms(cold)}, "
              f"warm median {ms(statistics.median(warm))}, max {ms(max(warm))}   budget 50 ms")
        t = time.perf_counter()
        text = history.previous_success_diff(history.record_run(record(root, 1, exit_code=1)))
        print(f"record_run + previous_success_diff after a failure: {ms(time.perf_counter() - t)} "
              f"({len((text or '').splitlines())} lines)")
        assert first == 1

        # fill to N runs quickly through the same row builder, in one transaction
        store = history.open_store()
        row, blobs = history.build_row(record(root, 2, exit_code=1))
        cols = ", ".join(row)
        store.conn.execute("BEGIN")
        store.conn.executemany("INSERT OR IGNORE INTO blobs (hash, data) VALUES (?, ?)", blobs.items())
        store.conn.executemany(f"INSERT INTO runs ({cols}) VALUES ({', '.join('?' * len(row))})",
                               [tuple(row.values())] * (opts.runs - store.count()))
        store.conn.execute("COMMIT")
        total = store.count()
        store.close()
        size = (root / "home" / "history.sqlite3").stat().st_size + sum(
            p.stat().st_size for p in (root / "home").glob("history.sqlite3-*"))

        env = dict(os.environ, NO_COLOR="1")
        base = time_cli(["--version"], env, opts.repeat)
        hist = time_cli(["history"], env, opts.repeat)
        hjson = time_cli(["history", "--json", "-n", "100"], env, opts.repeat)
        diff = time_cli(["diff"], env, opts.repeat)
        print(f"database: {total} runs, {size / 1e6:.1f} MB")
        print(f"lora-doctor --version (baseline, start-up only): median {ms(statistics.median(base))}")
        print(f"lora-doctor history ({total} runs): median {ms(statistics.median(hist))}, "
              f"max {ms(max(hist))}   budget 300 ms")
        print(f"lora-doctor history --json -n 100: median {ms(statistics.median(hjson))}")
        print(f"lora-doctor diff (latest failure vs success): median {ms(statistics.median(diff))}")


if __name__ == "__main__":
    main()
