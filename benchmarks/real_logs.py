"""How often `diagnose` names the right cause on REAL failure logs (users' pastes and real sd-scripts runs).

    python benchmarks/real_logs.py [CORPUS.jsonl ...] [--misses]

Each case of a labelled corpus (id, cause, log, also_ok?, weak?) is written to a file and given to
`lora-doctor diagnose --json` in a subprocess, as a user would. cause "unknown" or "none" must get
no diagnosis. Prints, per file: top-1 per family, top-1 overall, the share on strongly labelled
cases, false diagnoses and crashes. Without arguments it scores the corpora shipped in
tests/data/corpus/. These are dev logs the team has read: a score here is a regression guard, not
a blind estimate (the blind numbers come from real logs nobody on the team has seen).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "corpus"
DEFAULT = ("real-issues.dev.jsonl", "real-issues-2.dev.jsonl", "sdscripts-runs.dev.jsonl")


def diagnose_ids(log: str) -> list[str]:
    """The cause ids `lora-doctor diagnose --json` names for one log, best first ("<crash>" on failure)."""
    with tempfile.NamedTemporaryFile("w", suffix=".log", delete=False, encoding="utf-8") as fh:
        fh.write(log)
    try:
        proc = subprocess.run([sys.executable, "-m", "lora_doctor", "diagnose", "--json", fh.name],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, encoding="utf-8")
        return [d.get("id") for d in json.loads(proc.stdout).get("diagnoses", [])]
    except (subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        return [f"<crash: {type(exc).__name__}>"]
    finally:
        os.unlink(fh.name)


def score(path: Path, show_misses: bool) -> None:
    cases = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    family = collections.defaultdict(lambda: [0, 0])
    ok = known = strong_ok = strong = false = negatives = crashes = 0
    misses = []
    for case in cases:
        ids = diagnose_ids(case["log"])
        crashes += any(i and i.startswith("<crash") for i in ids)
        if case["cause"] in ("unknown", "none"):
            negatives += 1
            false += bool(ids)
            if ids:
                misses.append((case["id"], case["cause"], ids[:3]))
            continue
        right = bool(ids) and (ids[0] == case["cause"] or ids[0] in case.get("also_ok", []))
        known += 1
        ok += right
        if not case.get("weak"):
            strong += 1
            strong_ok += right
        fam = family[case["cause"].split(".")[0]]
        fam[0] += right
        fam[1] += 1
        if not right:
            misses.append((case["id"], case["cause"], ids[:3]))
    print(f"== {path.name}")
    for name in sorted(family):
        print(f"  {name:14s} {family[name][0]}/{family[name][1]}")
    if show_misses:
        for miss in misses:
            print("  miss", *miss)
    print(f"  top1={ok / max(known, 1):.2f} ({ok}/{known}) strong={strong_ok}/{strong} "
          f"false_diagnoses={false}/{negatives} crashes={crashes}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("corpora", nargs="*", type=Path)
    ap.add_argument("--misses", action="store_true", help="list every case not diagnosed right")
    args = ap.parse_args()
    for path in args.corpora or [CORPUS / name for name in DEFAULT]:
        if path.exists():
            score(path, args.misses)
        else:
            print(f"== {path}: not found")


if __name__ == "__main__":
    main()
