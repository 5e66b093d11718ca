"""How fast `diagnose` reads a huge log, how much memory it takes, how fast the database loads.

    python benchmarks/diagnose_speed.py [--size-mib 1024] [--keep]

Generates a log in /tmp (mostly tqdm progress-bar lines, some rich log records, a traceback and
accelerate's wrapper near the end; then a log of records only, capped at 128 MiB), diagnoses it in a fresh subprocess with the shipped database,
and prints wall time, MB/s and peak RSS (resource.getrusage), next to a baseline that only reads
the file line by line. Deletes the file afterwards. Targets: 1 GiB < 10 s, peak RSS < 200 MB;
database load + compile < 100 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

TRACEBACK = """\
Traceback (most recent call last):
  File "/home/user/sd-scripts/train_network.py", line 1913, in <module>
    trainer.train(args)
  File "/home/user/sd-scripts/library/train_util.py", line 1634, in __getitem__
    assert (
AssertionError: image too large, but cropping and bucketing are disabled / 画像サイズが大きいので: /data/1_x/big.png

Traceback (most recent call last):
  File "/home/user/venv/lib/python3.11/site-packages/accelerate/commands/launch.py", line 795, in simple_launcher
    raise subprocess.CalledProcessError(returncode=process.returncode, cmd=cmd)
subprocess.CalledProcessError: Command '['python3', 'train_network.py']' returned non-zero exit status 1.
"""
RECORD = ("2026-11-25 08:18:22 INFO     epoch is incremented. current_epoch: 0, epoch: 1"
          "                          train_util.py:784\n")


def block(start: int, sep: str) -> str:
    """About 1 MiB of progress updates (and a log record now and then); sep "records": log records only."""
    if sep == "records":
        return "".join(RECORD.replace("current_epoch: 0", f"current_epoch: {i}") for i in range(start, start + 9000))
    out = []
    for i in range(start, start + 9000):
        pct = i % 100
        bar = "█" * (pct // 10) + " " * (10 - pct // 10)
        out.append(f"steps: {pct:3d}%|{bar}| {i}/1000000 [01:23<45:06, 1.93s/it, avr_loss=0.{i % 9973:04d}]{sep}")
        if i % 3000 == 0:
            out.append("\n" + RECORD if sep == "\r" else RECORD)
    return "".join(out)


def generate(path: str, size: int, sep: str) -> int:
    written = 0
    with open(path, "w", encoding="utf-8", newline="") as fh:
        i = 0
        while written < size:
            chunk = block(i, sep)
            fh.write(chunk)
            written += len(chunk.encode("utf-8"))
            i += 9000
        fh.write("\n" + TRACEBACK)
    return os.path.getsize(path)


CHILD = r"""
import json, resource, sys, time
start = time.perf_counter()
mode, path = sys.argv[1], sys.argv[2]
if mode == "baseline":
    n = 0
    with open(path, "rb") as fh:
        for line in fh:
            n += 1
    result = {"lines": n}
else:
    from lora_doctor.diagnose.match import diagnose_file
    report = diagnose_file(path)
    result = {"top": report.diagnoses[0].signature_id if report.diagnoses else None,
              "root": report.root.exception if report.root else None, "lines": report.log.lines}
result["seconds"] = time.perf_counter() - start
result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(result))
"""

DB_CHILD = r"""
import json, time
t0 = time.perf_counter()
from lora_doctor.diagnose.signatures import builtin_sources, load_database
t1 = time.perf_counter()
db = load_database(builtin_sources())
t2 = time.perf_counter()
from lora_doctor.host.pluginmanager import PluginHost
host = PluginHost([], entry_points=False)
from lora_doctor.diagnose.match import load_signatures
t3 = time.perf_counter()
load_signatures(host)
t4 = time.perf_counter()
patterns = sum(1 for s in db.signatures for rx in (s.message, s.frame, *s.log_all, *s.log_any, *s.log_none) if rx)
print(json.dumps({"import_ms": (t1 - t0) * 1e3, "load_compile_ms": (t2 - t1) * 1e3,
                  "with_plugin_host_ms": (t4 - t3) * 1e3, "signatures": len(db.signatures),
                  "regexes": patterns, "files": len(db.files)}))
"""


def child(mode: str, path: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode, path], capture_output=True, text=True, timeout=600)
    if out.returncode:
        raise SystemExit(out.stderr)
    return json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    size = args.size_mib << 20

    runs = [json.loads(subprocess.run([sys.executable, "-c", DB_CHILD], capture_output=True, text=True,
                                      timeout=120).stdout) for _ in range(5)]
    best = min(runs, key=lambda r: r["load_compile_ms"])
    print(f"database: {best['signatures']} signatures, {best['regexes']} regexes in {best['files']} files; "
          f"load + validate + compile {best['load_compile_ms']:.1f} ms (best of 5, fresh process; "
          f"import {best['import_ms']:.1f} ms; via the plugin host {best['with_plugin_host_ms']:.1f} ms)")

    scenarios = (("newline-separated progress lines", "\n", size), ("\\r progress updates (tty capture)", "\r", size),
                 ("rich log records only (no progress bars)", "records", min(size, 128 << 20)))
    for label, sep, want in scenarios:
        fd, path = tempfile.mkstemp(prefix="lora-doctor-bench-", suffix=".log", dir="/tmp")
        os.close(fd)
        try:
            actual = generate(path, want, sep)
            base = child("baseline", path)
            diag = child("diagnose", path)
        finally:
            if not args.keep:
                os.unlink(path)
        mb = actual / 1e6
        print(f"\n{label}: {actual / 2**20:.0f} MiB")
        print(f"  baseline (read lines only): {base['seconds']:.2f} s, {mb / base['seconds']:.0f} MB/s, "
              f"peak RSS {base['peak_rss_mb']:.0f} MB")
        print(f"  diagnose_file:              {diag['seconds']:.2f} s, {mb / diag['seconds']:.0f} MB/s, "
              f"peak RSS {diag['peak_rss_mb']:.0f} MB -> top cause {diag['top']} (root {diag['root']}, "
              f"{diag['lines']} lines after normalizing)")


if __name__ == "__main__":
    main()
