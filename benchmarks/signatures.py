"""Time the known-error database: load + compile, and diagnosing every corpus log.

Run: .venv/bin/python benchmarks/signatures.py   (prints numbers; no assertions)
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "data" / "corpus"


def main() -> None:
    t0 = time.perf_counter()
    from lora_doctor.diagnose.match import diagnose_text, load_signatures
    from lora_doctor.diagnose.signatures import builtin_sources, load_database
    t_import = time.perf_counter() - t0

    loads = []
    for _ in range(5):
        t = time.perf_counter()
        db = load_database(builtin_sources())
        loads.append(time.perf_counter() - t)
    rx = sum(len(s.log_all) + len(s.log_any) + len(s.log_none) + (s.message is not None) for s in db.signatures)
    print(f"import engine: {t_import * 1000:.0f} ms")
    print(f"load + compile {len(db.signatures)} signatures ({rx} regexes, {len(db.files)} files): "
          f"median {statistics.median(loads) * 1000:.1f} ms, best {min(loads) * 1000:.1f} ms")

    host = load_signatures()[1]
    logs = [json.loads(line)["log"] for name in ("real-issues.dev.jsonl", "sdscripts-runs.dev.jsonl")
            for line in (CORPUS / name).read_text("utf-8").splitlines() if line.strip()]
    size = sum(len(x.encode("utf-8")) for x in logs)
    t = time.perf_counter()
    for log in logs:
        diagnose_text(log, host=host)
    took = time.perf_counter() - t
    scan_cost(db)
    print(f"diagnose {len(logs)} corpus logs ({size / 1024:.0f} KiB, database reloaded per log): "
          f"{took:.2f} s total, {took / len(logs) * 1000:.0f} ms per log")


def scan_cost(db, megabytes: int = 48) -> None:
    """What the database's line regexes add to parsing a big log (progress bars, blank lines, records)."""
    import tempfile

    from lora_doctor.diagnose.logparse import parse_stream
    from lora_doctor.diagnose.signatures import LineScanner, RegexGuard

    bar = "steps:  50%|#####     | 1/2 [00:02<00:02,  2.16s/it, avr_loss=0.119]\r" * 20 + "\n"
    record = "                    INFO     epoch is incremented. current_epoch: 0, epoch: 1      train_util.py:784\n"
    chunk = ((bar + "\n" * 20 + record) * 500).encode()
    with tempfile.NamedTemporaryFile(suffix=".log") as fh:
        for _ in range(megabytes * 2**20 // len(chunk)):
            fh.write(chunk)
        fh.flush()
        times = {}
        for label, patterns in (("parse only", []), ("parse + database regexes", db.log_patterns())):
            with RegexGuard() as guard, open(fh.name, "rb") as stream:
                t = time.perf_counter()
                parse_stream(stream, LineScanner(patterns, guard))
                times[label] = time.perf_counter() - t
    for label, took in times.items():
        print(f"{label}: {megabytes} MiB in {took:.2f} s ({megabytes / took:.1f} MiB/s)")


if __name__ == "__main__":
    main()
