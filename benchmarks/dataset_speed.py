"""Time the dataset doctor on a generated folder of 10,000 images; compare peak memory with and
without a few huge-dimension images (headers only must be read, so memory must not grow).

    .venv/bin/python benchmarks/dataset_speed.py [--images 10000] [--keep DIR]

Prints: generation time, the scan time inside the doctor (dataset_doctor.scan), the wall time
of the whole `lora-doctor dataset` command, and the peak RSS of a scan of small images vs the
same with huge ones. Each measurement runs in a fresh subprocess.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HUGE = [(12000, 9000), (16000, 12000), (20000, 15000)]  # 108, 192, 300 M pixels


def make_images(folder: Path, n: int, seed: int = 0) -> None:
    """n small real images (PNG/JPEG/WebP, 5 % RGBA line art) with a .txt caption each."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        w, h = rng.choice([(64, 64), (96, 64), (64, 96), (80, 80), (128, 72)])
        kind = i % 20
        if kind == 0:
            im = Image.new("RGBA", (w, h), (0, 0, 0, 0))
            ImageDraw.Draw(im).line((0, 0, w - 1, h - 1), fill=(0, 0, 0, 255), width=2)
            path = folder / f"img{i:05d}.png"
        else:
            im = Image.new("RGB", (w, h), (rng.randrange(256), rng.randrange(256), rng.randrange(256)))
            ImageDraw.Draw(im).point((i % w, (i // w) % h), fill="white")
            path = folder / f"img{i:05d}.{('png', 'jpg', 'webp')[kind % 3]}"
        im.save(path)
        path.with_suffix(".txt").write_text(f"trigger, tag{i % 50}, tag{i % 7}", encoding="utf-8")


def make_huge(folder: Path) -> None:
    """Big-dimension JPEGs that are small on disk (flat grey, encoded in strips of memory)."""
    from PIL import Image

    for i, (w, h) in enumerate(HUGE):
        im = Image.new("L", (w, h), 128)
        im.save(folder / f"huge{i}.jpg", quality=50)
        del im
        (folder / f"huge{i}.txt").write_text("trigger, huge", encoding="utf-8")


CHILD = r"""
import json, resource, sys, time
from lora_doctor.testing import make_context
from lora_doctor.dataset.scan import scan
ctx = make_context(["accelerate", "launch", "train_network.py", "--train_data_dir=" + sys.argv[1],
                    "--resolution=512", "--enable_bucket", "--caption_extension=.txt"])
t = time.perf_counter(); s = scan(ctx); dt = time.perf_counter() - t
n = sum(len(x.images) for x in s.subsets)
try:  # VmHWM: this process's own peak (ru_maxrss can carry the parent's peak across fork+exec)
    peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) / 1024
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": dt, "images": n, "maxrss_mb": peak}))
"""


def measure(root: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, str(root)], capture_output=True, text=True, timeout=600)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=10_000)
    ap.add_argument("--keep", metavar="DIR", help="build (or reuse) the dataset here instead of a temp folder")
    args = ap.parse_args()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lora-doctor-bench-"))
    try:
        big = base / "big" / "10_subject"
        small = base / "small" / "1_subject"
        huge = base / "huge" / "1_subject"
        t = time.perf_counter()
        if not big.exists():
            make_images(big, args.images)
            make_images(small, 500, seed=1)
            make_images(huge, 500, seed=1)
            make_huge(huge)
        print(f"generate: {time.perf_counter() - t:.1f} s{' (reused)' if args.keep else ''} ({args.images} + 500 + 500 images, "
              f"{len(HUGE)} huge: {', '.join(f'{w}x{h}' for w, h in HUGE)})")
        print(f"cpu cores: {os.cpu_count()}, python {sys.version.split()[0]}")
        for _ in range(2):  # the second run has a warm page cache, like a re-check
            r = measure(base / "big")
            print(f"scan {r['images']} images: {r['seconds']:.2f} s, peak RSS {r['maxrss_mb']:.0f} MB")
        t = time.perf_counter()
        cli = subprocess.run([sys.executable, "-m", "lora_doctor", "dataset", str(base / "big"), "--resolution=512",
                              "--enable_bucket", "--caption_extension=.txt"], capture_output=True, text=True,
                             timeout=600)
        print(f"`lora-doctor dataset` wall time: {time.perf_counter() - t:.2f} s (exit {cli.returncode})")
        a, b = measure(base / "small"), measure(base / "huge")
        print(f"peak RSS, 500 small images: {a['maxrss_mb']:.0f} MB ({a['seconds']:.2f} s)")
        print(f"peak RSS, same + {len(HUGE)} huge-dimension JPEGs: {b['maxrss_mb']:.0f} MB ({b['seconds']:.2f} s)")
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
