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
    from lora_doctor.match import diagnose_text, load_signatures
    from lora_doctor.signatures import builtin_sources, load_database
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
    print(f"diagnose {len(logs)} corpus logs ({size / 1024:.0f} KiB, database reloaded per log): "
          f"{took:.2f} s total, {took / len(logs) * 1000:.0f} ms per log")


if __name__ == "__main__":
    main()
