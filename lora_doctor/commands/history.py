"""`lora-doctor history [--json] [-n N]`, `history show RUN`, `history prune --older-than 90d`."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import shlex
import sys
import time

from lora_doctor.errors import UsageError

DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "": 86400}
OPENED: dict = {}  # the database file this command opened (it may be the newer-schema fallback)


def add_parser(sub) -> None:
    p = sub.add_parser("history", help="the runs recorded by `lora-doctor run`",
                       description="List the runs `lora-doctor run` recorded (newest first), show one in "
                                   "full, or prune old ones. The database is history.sqlite3 in the per-user "
                                   "data folder ($LORA_DOCTOR_HOME overrides). Exit code: 0 ok, 1 the history "
                                   "cannot be read, 2 usage.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("-n", type=int, default=20, metavar="N", help="show the N most recent runs (0: all; default 20)")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    show = actions.add_parser("show", help="one run in full (default: the latest)",
                              description="Show one recorded run in full; without RUN, the latest.")
    show.add_argument("run", metavar="RUN", nargs="?", default="last",
                      help="a run id from `lora-doctor history`, 'last' (the default), 'last-ok' or 'last-failed'")
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object")
    prune = actions.add_parser("prune", help="delete runs older than an age",
                               description="Delete the runs that started longer ago than AGE.")
    prune.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 90d, 12w, 48h")
    prune.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print one JSON object")
    p.set_defaults(handler=run)


def emit_json(data) -> None:
    from lora_doctor.output.render import print_json  # not at module level: `history` answers in ~2 interpreter start-ups

    print_json(data)


def open_history(create: bool = False):
    """The open store (or None when nothing was recorded yet); a broken database is a one-line error."""
    from lora_doctor.history.store import HistoryError, open_store

    try:
        store = open_store(create=create)
        OPENED["path"] = store.path if store else None
        return store
    except HistoryError as exc:
        print(f"lora-doctor: error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def home_problem(folder) -> str:
    """Why runs cannot be recorded in `folder` (a file, read-only), or ''."""
    existing = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        return (f"the history folder {folder} cannot be created: {existing} is a file "
                "(set LORA_DOCTOR_HOME to a folder); no run is recorded")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        return (f"the history folder {folder} is not writable (set LORA_DOCTOR_HOME to a writable folder); "
                "no run is recorded")
    return ""


def resolve_run(store, text: str) -> dict:
    """A run from `12`, `#12`, `last`, `last-ok` or `last-failed`; unknown ones are usage errors."""
    token = text.strip().lstrip("#").lower()
    named = {"last": None, "latest": None, "last-ok": "ok", "last-failed": "failed"}
    if token in named:
        run_id = store.latest_id(named[token]) if store else None
        if run_id is None:
            raise UsageError(f"no run matches '{text}' in the history (see `lora-doctor history`)")
    elif token.isdigit():
        run_id = int(token)
    else:
        raise UsageError(f"RUN must be a run id from `lora-doctor history`, 'last', 'last-ok' or "
                         f"'last-failed', not '{text}'")
    run = store.get(run_id) if store else None
    if run is None:
        raise UsageError(f"no run #{run_id} in the history (see `lora-doctor history`)")
    return run


def parse_age(text: str) -> float:
    m = DURATION_RE.match(text)
    if not m:
        raise UsageError(f"--older-than: '{text}' is not an age; use e.g. 90d, 12w, 48h or 30m")
    return float(m.group(1)) * UNIT_SECONDS[m.group(2).lower()]


def duration(run: dict) -> str:
    start, end = run.get("started_at"), run.get("ended_at")
    if not start or not end:
        return "?"
    s = int(max(0, end - start))
    return f"{s // 3600}h{s % 3600 // 60:02d}" if s >= 3600 else f"{s // 60}m{s % 60:02d}" if s >= 60 else f"{s}s"


def outcome_text(run: dict) -> str:
    if run["outcome"] == "failed" and run.get("exit_code") is not None:
        return f"failed ({run['exit_code']})"
    return run["outcome"]


def cause_text(run: dict) -> str:
    """The diagnosis, or an exit cause that says more than the exit code (a signal, a stop)."""
    if run["outcome"] == "ok":
        return ""
    cause = run.get("exit_cause") or ""
    return run.get("diagnosis_id") or ("" if re.fullmatch(r"(exit(ed with)? code|exited) -?\d+", cause) else cause)


def dataset_text(datasets) -> str:
    datasets = datasets or []
    if not datasets:
        return "-"
    images = sum(d.get("images") or 0 for d in datasets)
    if len(datasets) == 1:
        path = datasets[0]["path"]
        return f"{os.path.basename(path.rstrip(os.sep + '/')) or path} ({images} img)"
    return f"{len(datasets)} folders ({images} img)"


def summary_json(run: dict) -> dict:
    keys = ("id", "started_at", "ended_at", "script", "output_dir", "outcome", "exit_code", "exit_cause",
            "diagnosis_id", "diagnosis_title", "model")
    out = {k: run.get(k) for k in keys}
    out["dataset"] = [{k: d.get(k) for k in ("path", "images", "captions", "bytes", "hash")}
                      for d in run.get("dataset") or []]
    return out


def table(rows: list[list[str]], header: list[str]) -> list[str]:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header] + rows]
    if sys.stdout.isatty():
        width = shutil.get_terminal_size((120, 24)).columns
        lines = [line if len(line) <= width else line[:width - 1] + "…" for line in lines]
    return lines


def list_runs(args) -> int:
    from lora_doctor.history.store import database_path
    from lora_doctor.history.diff import when

    if args.n < 0:
        raise UsageError("-n must be 0 (all) or a positive number of runs")
    store = open_history()
    if store is None:
        problem = home_problem(database_path().parent)
        if problem:
            print(f"lora-doctor: error: {problem}", file=sys.stderr)
            return 1
        if args.json:
            emit_json({"database": str(database_path()), "total": 0, "runs": []})
        else:
            print(f"No runs recorded yet. `lora-doctor run -- accelerate launch …` records each run in "
                 f"{database_path()}.")
        return 0
    try:
        runs, total = store.recent(args.n or None), store.count()
    finally:
        store.close()
    if args.json:
        emit_json({"database": str(store.path), "total": total, "runs": [summary_json(r) for r in runs]})
        return 0
    if not runs:
        print(f"No runs recorded yet ({store.path}).")
        return 0
    rows = [[str(r["id"]), when(r["started_at"]), os.path.basename(r.get("script") or "?"),
             dataset_text(r.get("dataset")), outcome_text(r), duration(r),
             cause_text(r)]
            for r in runs]
    for line in table(rows, ["ID", "WHEN", "SCRIPT", "DATASET", "OUTCOME", "TOOK", "CAUSE"]):
        print(line)
    more = f"; -n {min(total, 100)} for more" if total > len(runs) else ""
    print(f"{len(runs)} of {total} runs{more}. Details: lora-doctor history show ID · what changed: lora-doctor diff")
    return 0


def show_run(args) -> int:
    from lora_doctor.history.diff import IMPORTANT_PACKAGES, when
    from lora_doctor.history.fingerprint import unpack_manifest
    from lora_doctor.redact import redact_text

    store = open_history()
    if store is None and args.run == "last":
        raise UsageError("the history is empty: no runs recorded yet (`lora-doctor run -- …` records each run)")
    try:
        run = resolve_run(store, args.run)
    finally:
        if store is not None:
            store.close()
    manifest = unpack_manifest(run.pop("dataset_manifest", None))
    run.pop("script_key", None), run.pop("output_key", None)
    if args.json:
        run["dataset_files"] = {k: len(v) for k, v in manifest.items()}
        emit_json(run)
        return 0
    head = f"Run #{run['id']}: {outcome_text(run)}"
    if cause_text(run):
        head += f" — {cause_text(run)}"
    print(redact_text(head))
    field = lambda label, value: print(redact_text(f"  {label:<10}{value}"))  # noqa: E731
    field("started", f"{when(run['started_at'])}  (ran {duration(run)})")
    field("command", shlex.join(run.get("argv") or []) or "?")
    field("cwd", run.get("cwd") or "?")
    field("output", run.get("output_dir") or "-")
    if run.get("exit_cause"):
        field("exit", f"{run.get('exit_code')} ({run['exit_cause']})")
    if run.get("diagnosis_id"):
        field("diagnosis", f"{run['diagnosis_id']}: {run.get('diagnosis_title') or ''}".rstrip(": "))
    facts = run.get("facts") or {}
    py, torch, pkgs = facts.get("python") or {}, facts.get("torch") or {}, facts.get("packages") or {}
    if py:
        field("python", f"{py.get('version')}  {py.get('executable')}")
    if torch:
        if torch.get("imported"):
            gpus = ", ".join(d.get("name") or "?" for d in torch.get("devices") or []) or "no GPU"
            field("torch", f"{torch.get('version')} (CUDA build {torch.get('cuda_build') or 'none'}; {gpus})")
        else:
            field("torch", f"does not import: {torch.get('error')}")
    if pkgs:
        field("packages", ", ".join(f"{n} {pkgs[n]}" for n in IMPORTANT_PACKAGES if pkgs.get(n)) or "-")
    if not facts:
        field("facts", "none recorded (the probe failed)")
    for d in run.get("dataset") or []:
        state = (f"{d['images']} images, {d['captions']} captions, {d['bytes'] / 1e6:.1f} MB, hash {d['hash']}"
                 if d.get("exists") else "missing")
        field("dataset", f"{d['path']}: {state}{' (truncated)' if d.get('truncated') else ''}")
    ident = run.get("model_identity") or {}
    if run.get("model"):
        extra = {"file": lambda: f"{ident.get('size', 0) / 1e9:.2f} GB, modified {when(ident.get('mtime'))}",
                 "folder": lambda: f"folder, {ident.get('files')} files, {ident.get('size', 0) / 1e9:.2f} GB",
                 "repo": lambda: f"repo, cached revision {ident.get('revision') or 'none'}",
                 "missing": lambda: "not found"}.get(ident.get("kind"), lambda: "")()
        field("model", f"{run['model']}  ({extra})" if extra else run["model"])
    for name, cfg in (run.get("configs") or {}).items():
        field(name, f"{cfg.get('path')}  (sha256 {cfg.get('sha256') or 'unreadable'})")
    if run.get("log_path"):
        field("log", run["log_path"])
    if run.get("report_path"):
        field("report", run["report_path"])
    return 0


def prune_runs(args) -> int:
    seconds = parse_age(args.older_than)
    before = time.time() - seconds
    store = open_history()
    if store is None:
        removed, left = 0, 0
    else:
        try:
            removed = store.prune(before)
            left = store.count()
            if removed:
                try:
                    store.conn.execute("VACUUM")
                except Exception:  # another run holds the file: space is reused later anyway
                    pass
        finally:
            store.close()
    if args.json:
        emit_json({"removed": removed, "remaining": left, "older_than_seconds": seconds})
    else:
        print(f"Pruned {removed} run{'s' * (removed != 1)} started before "
             f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(before))}; {left} remain.")
    return 0


def damaged(exc: Exception) -> int:
    """A database error while reading: a damaged file is moved aside (kept) and a fresh one used from
    now on; anything else is one error line. Exit code 1 either way."""
    from lora_doctor.history.store import is_corrupt, database_path, quarantine

    path = OPENED.get("path") or database_path()
    if is_corrupt(exc) and path.exists():
        kept = quarantine(path, str(exc))
        print(f"lora-doctor: `sqlite3 {kept} .recover` may rescue the runs it still holds.", file=sys.stderr)
    else:
        print(f"lora-doctor: error: cannot read the run history {path}: {exc}", file=sys.stderr)
    return 1


def run(args) -> int:
    import sqlite3

    action = {"show": show_run, "prune": prune_runs}.get(args.action, list_runs)
    try:
        return action(args)
    except sqlite3.DatabaseError as exc:
        return damaged(exc)
