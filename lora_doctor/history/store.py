"""The run history: one SQLite row per `lora-doctor run`, so "it worked yesterday" can be answered.

The runner calls `record_run(record)` after every run and `previous_success_diff(run_id)` after a
failure; both never raise. The database lives in the per-user data folder (`LORA_DOCTOR_HOME`
overrides it), is written in WAL mode inside transactions (a crash mid-write loses at most that
row), waits for concurrent writers, and never deletes a file it cannot use: a corrupt one is moved
aside to `history.sqlite3.corrupt-<timestamp>`, a newer-schema one is left untouched and a fresh
file beside it is used instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import time
import zlib
from pathlib import Path

DB_NAME = "history.sqlite3"
BUSY_TIMEOUT = 15.0  # seconds a writer waits for another one
RETRY_DEADLINE = 20.0

# Schema migrations: MIGRATIONS[i] takes the database from user_version i to i + 1.
MIGRATIONS: list[tuple[str, ...]] = [
    (  # 1: the runs table, and content-addressed blobs (facts, dataset listings) shared between runs
        """CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at REAL, ended_at REAL,
            script TEXT, script_key TEXT NOT NULL DEFAULT '',
            output_dir TEXT, output_key TEXT NOT NULL DEFAULT '',
            cwd TEXT, argv TEXT, options TEXT,
            exit_code INTEGER, exit_cause TEXT, outcome TEXT NOT NULL,
            diagnosis_id TEXT, diagnosis_title TEXT,
            facts_blob TEXT, dataset TEXT, manifest_blob TEXT,
            model TEXT, model_identity TEXT, configs TEXT,
            log_path TEXT, report_path TEXT, doctor_version TEXT)""",
        "CREATE TABLE blobs (hash TEXT PRIMARY KEY, data BLOB NOT NULL)",
    ),
    (  # 2: lookups by script+output folder (diff) and by start time (prune)
        "CREATE INDEX runs_by_key ON runs(script_key, output_key, outcome, id)",
        "CREATE INDEX runs_by_start ON runs(started_at)",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)
JSON_COLUMNS = ("argv", "options", "dataset", "model_identity", "configs")
SUMMARY_COLUMNS = ("id", "started_at", "ended_at", "script", "output_dir", "exit_code", "exit_cause",
                   "outcome", "diagnosis_id", "diagnosis_title", "dataset", "model")


class HistoryError(Exception):
    """The history database cannot be used (one line, says what to do)."""


def warn(message: str) -> None:
    print(f"lora-doctor: warning: {message}", file=sys.stderr)


def home() -> Path:
    """The folder holding the database: $LORA_DOCTOR_HOME, else the per-user data folder."""
    env = os.environ.get("LORA_DOCTOR_HOME")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("lora-doctor", appauthor=False))


def database_path() -> Path:
    return home() / DB_NAME


def fallback_path(path: Path) -> Path:
    """Where we write when `path` belongs to a newer lora-doctor (schema > ours)."""
    return path.with_name(f"history.schema{SCHEMA_VERSION}.sqlite3")


def is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text


def _is_busy(exc: sqlite3.Error) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


def retry(fn, deadline: float = RETRY_DEADLINE):
    """Call fn(), retrying while another writer holds the database (beyond SQLite's busy timeout)."""
    stop = time.monotonic() + deadline
    pause = 0.01
    while True:
        try:
            return fn()
        except sqlite3.OperationalError as exc:
            if not _is_busy(exc) or time.monotonic() > stop:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def quarantine(path: Path, reason: str) -> Path:
    """Move a corrupt database (and its -wal/-shm files) aside; returns the new name. Nothing is deleted."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            try:
                os.replace(side, target.with_name(target.name + suffix))
            except OSError:
                pass
    warn(f"the run history {path} is unreadable ({reason}); moved it to {target.name} and a fresh one "
         "is used from now on (nothing was deleted)")
    return target


class Store:
    """An open history database."""

    def __init__(self, conn: sqlite3.Connection, path: Path):
        self.conn = conn
        self.path = path

    def close(self) -> None:
        self.conn.close()

    # -- writing -----------------------------------------------------------------------------------
    def insert(self, row: dict, blobs: dict[str, bytes]) -> int:
        """Insert a run and the blobs it references, in one transaction."""
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)

        def write():
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                self.conn.executemany("INSERT OR IGNORE INTO blobs (hash, data) VALUES (?, ?)", blobs.items())
                cur = self.conn.execute(f"INSERT INTO runs ({cols}) VALUES ({marks})", tuple(row.values()))
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            return int(cur.lastrowid)

        return retry(write)

    def prune(self, before: float) -> int:
        """Delete the runs started before `before` and the blobs no run references any more."""
        def write():
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                n = self.conn.execute("DELETE FROM runs WHERE started_at < ?", (before,)).rowcount
                self.conn.execute("DELETE FROM blobs WHERE hash NOT IN (SELECT facts_blob FROM runs WHERE "
                                  "facts_blob IS NOT NULL UNION SELECT manifest_blob FROM runs WHERE "
                                  "manifest_blob IS NOT NULL)")
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            return n

        return retry(write)

    # -- reading -----------------------------------------------------------------------------------
    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM runs").fetchone()[0]

    def recent(self, limit: int | None = 20) -> list[dict]:
        sql = f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM runs ORDER BY id DESC"
        rows = self.conn.execute(sql + (" LIMIT ?" if limit else ""), (limit,) if limit else ())
        return [_decode(dict(zip(SUMMARY_COLUMNS, r))) for r in rows]

    def get(self, run_id: int) -> dict | None:
        cur = self.conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,))
        row = cur.fetchone()
        if row is None:
            return None
        run = _decode(dict(zip([d[0] for d in cur.description], row)))
        facts = self.blob(run.pop("facts_blob"))
        try:
            run["facts"] = json.loads(zlib.decompress(facts)) if facts else {}
        except (zlib.error, ValueError):
            run["facts"] = {}
        run["dataset_manifest"] = self.blob(run.pop("manifest_blob"))
        return run

    def blob(self, key: str | None) -> bytes | None:
        if not key:
            return None
        row = self.conn.execute("SELECT data FROM blobs WHERE hash = ?", (key,)).fetchone()
        return row[0] if row else None

    def _first_id(self, where: str, params: tuple) -> int | None:
        row = self.conn.execute(f"SELECT id FROM runs WHERE {where} ORDER BY id DESC LIMIT 1", params).fetchone()
        return row[0] if row else None

    def latest_id(self, outcome: str | None = None) -> int | None:
        return self._first_id("outcome = ?", (outcome,)) if outcome else self._first_id("1", ())

    def previous_id(self, run: dict, outcome: str | None = "ok", before: bool = True) -> int | None:
        """The latest run of the same script and output folder (with that outcome), before `run` or any."""
        where = "script_key = ? AND output_key = ? AND id != ?"
        params: tuple = (run["script_key"], run["output_key"], run["id"])
        if outcome:
            where += " AND outcome = ?"
            params += (outcome,)
        if before:
            where += " AND id < ?"
            params += (run["id"],)
        return self._first_id(where, params)


def _decode(row: dict) -> dict:
    for col in JSON_COLUMNS:
        if col in row:
            try:
                row[col] = json.loads(row[col]) if row[col] else None
            except ValueError:
                row[col] = None
    return row


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT, isolation_level=None)
    try:
        conn.execute("PRAGMA user_version").fetchone()  # a non-database file fails here
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the schema to SCHEMA_VERSION in one transaction (concurrent openers wait, then see it done)."""
    def run():
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for step in MIGRATIONS[version:]:
                for statement in step:
                    conn.execute(statement)
            if version < SCHEMA_VERSION:
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    retry(run)


def _prepare(path: Path, create: bool) -> Store | None:
    conn = _connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            conn.close()
            return None  # caller falls back to the file beside it
        if version < SCHEMA_VERSION or create:
            if retry(lambda: conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                retry(lambda: conn.execute("PRAGMA journal_mode=WAL").fetchone())
        conn.execute("PRAGMA synchronous=NORMAL")
        if version < SCHEMA_VERSION:
            _migrate(conn, path)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # surfaces a corrupt schema
    except BaseException:
        conn.close()
        raise
    return Store(conn, path)


def open_store(create: bool = True, path: Path | None = None) -> Store | None:
    """Open (creating when `create`) the history database; None when there is none and not `create`.

    Raises HistoryError with a one-line message when it cannot be opened at all.
    """
    path = path or database_path()
    for attempt in range(3):
        if not path.exists() and not create:
            return None
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
            store = _prepare(path, create)
        except sqlite3.DatabaseError as exc:
            if is_corrupt(exc) and path.exists() and attempt < 2:
                quarantine(path, str(exc))
                continue
            raise HistoryError(f"cannot open the run history {path}: {exc} "
                               "(set LORA_DOCTOR_HOME to a writable folder)") from None
        except OSError as exc:
            raise HistoryError(f"cannot create the run history folder {path.parent}: {exc} "
                               "(set LORA_DOCTOR_HOME to a writable folder)") from None
        if store is not None:
            return store
        beside = fallback_path(path)
        warn(f"the run history {path} was written by a newer lora-doctor (schema newer than "
             f"{SCHEMA_VERSION}); leaving it untouched and using {beside.name} beside it. Upgrade "
             "lora-doctor to see both.")
        if path == beside:
            raise HistoryError(f"{path} has a newer schema; upgrade lora-doctor")
        path = beside
    raise HistoryError(f"cannot open the run history {path}")


# -- the runner's API --------------------------------------------------------------------------------
def _outcome(exit_code, exit_cause: str, silent_failure: str | None = None, stopped: str | None = None) -> str:
    """ok · failed · interrupted · blocked · unknown. A run that exits 0 after its loss went NaN (or
    its log said `No data found`), or that lora-doctor stopped for a NaN loss, failed: it must never
    be taken for the last good run."""
    cause = (exit_cause or "").lower()
    if silent_failure or stopped == "nan":
        return "failed"
    if exit_code == 0:
        return "ok"
    if "blocked" in cause or "not launched" in cause:
        return "blocked"
    from lora_doctor.exits import CTRL_C_CODES

    if exit_code in CTRL_C_CODES or "interrupt" in cause or "sigint" in cause:
        return "interrupted"
    if exit_code is None:
        return "unknown"
    return "failed"


def _key(path, cwd) -> str:
    if not isinstance(path, str) or not path:
        return ""
    from lora_doctor.history.fingerprint import resolve

    key = resolve(path, cwd)
    return os.path.normcase(key)


def _redacted_options(options: dict) -> dict:
    """The parsed options with every secret replaced: the value of an option named like a secret
    (`wandb_api_key`, `wandb-api-key`, `apikey`, `huggingface_token` …), and tokens, NAME=V and
    URL passwords inside any other value."""
    from lora_doctor.redact import REDACTED, is_secret_option, redact_argv, redact_text

    out = {}
    for name, value in (options or {}).items():
        if is_secret_option(str(name)) and value is not True:
            out[str(name)] = REDACTED
        elif isinstance(value, str):
            out[str(name)] = redact_text(value)
        elif isinstance(value, (list, tuple)):
            out[str(name)] = redact_argv([str(v) for v in value])
        else:
            out[str(name)] = value
    return out


def _blob(data: bytes | None, blobs: dict[str, bytes]) -> str | None:
    if not data:
        return None
    key = hashlib.sha1(data).hexdigest()
    blobs[key] = data
    return key


def build_row(record: dict) -> tuple[dict, dict[str, bytes]]:
    """The database row for a runner record (outcome, keys and input fingerprints added) and the
    content-addressed blobs it references (the facts and the dataset listing, shared between runs)."""
    from lora_doctor import __version__
    from lora_doctor.history.fingerprint import (config_identities, dataset_fingerprint, dataset_folders,
                                      model_identity, pack_manifest)
    from lora_doctor.redact import redact_argv, redact_obj, redact_text

    def text(value):
        return None if value is None else redact_text(str(value))

    cwd = record.get("cwd") or os.getcwd()
    options = _redacted_options(record.get("options") or {})
    caption_ext = options.get("caption_extension") if isinstance(options.get("caption_extension"), str) else None
    datasets, manifests = [], {}
    for folder in dataset_folders([str(d) for d in record.get("dataset_dirs") or [] if d], cwd):
        info, manifest = dataset_fingerprint(folder, caption_ext)
        datasets.append(info)
        manifests[folder] = manifest
    output_dir = options.get("output_dir") if isinstance(options.get("output_dir"), str) else None
    dump = lambda value: json.dumps(value, default=str, ensure_ascii=False)  # noqa: E731
    blobs: dict[str, bytes] = {}
    facts = redact_obj(record.get("facts") or {})
    row = {
        "started_at": float(record.get("started_at") or time.time()),
        "ended_at": float(record.get("ended_at") or time.time()),
        "script": record.get("script"),
        "script_key": _key(record.get("script"), cwd),
        "output_dir": output_dir,
        "output_key": _key(output_dir, cwd),
        "cwd": text(cwd),
        "argv": dump(redact_argv([str(a) for a in record.get("argv") or []])),
        "options": dump(options),
        "exit_code": record.get("exit_code"),
        "exit_cause": text(record.get("exit_cause")),
        "outcome": _outcome(record.get("exit_code"), record.get("exit_cause") or "",
                            record.get("silent_failure"), record.get("stopped")),
        "diagnosis_id": text(record.get("diagnosis_id")),
        "diagnosis_title": text(record.get("diagnosis_title")),
        "facts_blob": _blob(zlib.compress(dump(facts).encode("utf-8"), 6) if facts else None, blobs),
        "dataset": dump(redact_obj(datasets)),
        "manifest_blob": _blob(pack_manifest(manifests), blobs),
        "model": text(record.get("model")),
        "model_identity": dump(redact_obj(model_identity(text(record.get("model")), cwd))),
        "configs": dump(redact_obj(config_identities(options, cwd))),
        "log_path": text(record.get("log_path")),
        "report_path": text(record.get("report_path")),
        "doctor_version": __version__,
    }
    return row, blobs


def record_run(record: dict) -> int | None:
    """Store one finished run; returns its id, or None (after one warning line) when it cannot."""
    try:
        row, blobs = build_row(record)
        for attempt in range(2):
            store = open_store(create=True)
            try:
                return store.insert(row, blobs)
            except sqlite3.DatabaseError as exc:
                if not is_corrupt(exc) or attempt:
                    raise
                store.close()
                quarantine(store.path, str(exc))
            finally:
                store.close()
    except HistoryError as exc:
        warn(f"this run was not recorded in the history: {exc}")
    except Exception as exc:  # never let the history break a run
        warn(f"this run was not recorded in the history ({type(exc).__name__}: {exc})")
    return None


def previous_success_diff(run_id: int | None) -> str | None:
    """A brief "what changed since the last success of the same script and output folder", most
    suspicious first; None when there is no earlier success (or no history)."""
    if run_id is None:
        return None
    try:
        store = open_store(create=False)
        if store is None:
            return None
        try:
            run = store.get(run_id)
            if run is None:
                return None
            ok_id = store.previous_id(run, "ok")
            if ok_id is None:
                return None
            from lora_doctor.history.diff import brief, diff_runs

            ok = store.get(ok_id)
            return brief(ok, run, diff_runs(ok, run))
        finally:
            store.close()
    except Exception as exc:
        warn(f"could not compare with the last successful run ({type(exc).__name__}: {exc})")
        return None
