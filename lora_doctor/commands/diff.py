"""`lora-doctor diff [RUN_A] [RUN_B]`: what changed between two recorded runs, most suspicious first."""

from __future__ import annotations

import os

from lora_doctor.errors import UsageError
from lora_doctor.commands.history import damaged, emit_json, open_history, resolve_run, summary_json


def add_parser(sub) -> None:
    p = sub.add_parser(
        "diff", help="what changed between two recorded runs (default: the latest run vs the last success before it)",
        description="Compare two runs recorded by `lora-doctor run`: the command (options added, removed, "
                    "changed), package versions (upgraded/downgraded), torch/CUDA/GPU, Python, dataset and "
                    "model, most suspicious first. No RUN: the latest run against the last success of the "
                    "same script and output folder before it. One RUN: that run against the last success "
                    "before it. Without an earlier success, the run just before it. Exit code: 0 compared, "
                    "1 nothing to compare with, 2 usage.")
    p.add_argument("run_a", nargs="?", metavar="RUN_A", help="the earlier run (an id from `lora-doctor history`)")
    p.add_argument("run_b", nargs="?", metavar="RUN_B", help="the later run")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def _target(run: dict) -> str:
    script = os.path.basename(run.get("script") or "?")
    return f"{script} → {run['output_dir']}" if run.get("output_dir") else script


def pick_runs(store, run_a: str | None, run_b: str | None) -> tuple[dict, dict] | str:
    """The two runs to compare, or the sentence that says why there are none. One run (or none: the
    latest) is compared with the last success of the same script and output folder before it, else
    with the run just before it."""
    if run_a and run_b:
        return resolve_run(store, run_a), resolve_run(store, run_b)
    if not run_a and store.latest_id() is None:
        return "No runs recorded yet: `lora-doctor run -- accelerate launch …` records each run."
    b = resolve_run(store, run_a or "last")
    a_id = store.previous_id(b, "ok") or store.previous_id(b, None)
    if a_id is None:
        return (f"Run #{b['id']} is the first recorded run of {_target(b)}: nothing to compare it with. "
                "Give two runs: lora-doctor diff RUN_A RUN_B")
    return store.get(a_id), b


def run(args) -> int:
    import sqlite3

    try:
        return compare(args)
    except sqlite3.DatabaseError as exc:
        return damaged(exc)


def compare(args) -> int:
    from lora_doctor.history.diff import describe, diff_runs, notes

    if args.run_b and not args.run_a:
        raise UsageError("give RUN_A before RUN_B")
    store = open_history()
    if store is None and (args.run_a or args.run_b):
        raise UsageError("the history is empty: no runs recorded yet")
    try:
        picked = pick_runs(store, args.run_a, args.run_b) if store else (
            "No runs recorded yet: `lora-doctor run -- accelerate launch …` records each run.")
    finally:
        if store is not None:
            store.close()
    if isinstance(picked, str):
        if args.json:
            emit_json({"a": None, "b": None, "changes": [], "notes": [picked]})
        else:
            print(picked)
        return 1
    a, b = picked
    changes = diff_runs(a, b)
    if args.json:
        emit_json({"a": summary_json(a), "b": summary_json(b), "changes": [c.to_json() for c in changes],
                   "notes": notes(a, b)})
        return 0
    print(f"From {describe(a)} to {describe(b)}")
    if not args.run_b and a.get("outcome") != "ok":
        print(f"  i no success of {_target(b)} before run #{b['id']}: compared with the run just before it")
    print(f"  {_target(a)}" if _target(a) == _target(b) else f"  {_target(a)}  vs  {_target(b)}")
    for change in changes:
        print(f"  {change.mark} {change.text}")
    for note in notes(a, b):
        print(f"  i {note}")
    if changes:
        print(f"{len(changes)} change{'s' * (len(changes) != 1)}, most suspicious first.")
    else:
        print("No recorded difference: same options, packages, dataset and model.")
    return 0
