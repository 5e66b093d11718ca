"""The run history store: recording, listing, show, prune, and surviving crashes, races and bad files."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from support import ROOT, run_cli
from lora_doctor.history import store as history
from lora_doctor.history.fingerprint import dataset_fingerprint, model_identity

TOKEN = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"


def make_dataset(root: Path, n: int = 3) -> Path:
    folder = root / "img" / "10_cat"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"cat{i}.png").write_bytes(b"\x89PNG" + bytes(100 + i))
        (folder / f"cat{i}.txt").write_text("a cat", encoding="utf-8")
    return root / "img"


def record(tmp_path: Path, **over) -> dict:
    """A record shaped like the runner's."""
    now = time.time()
    rec = {
        "started_at": now - 60, "ended_at": now, "script": "train_network.py",
        "argv": ["accelerate", "launch", "train_network.py", "--output_dir", "out", "--learning_rate", "1e-4"],
        "options": {"output_dir": "out", "learning_rate": "1e-4", "train_data_dir": "img"},
        "cwd": str(tmp_path), "exit_code": 0, "exit_cause": "exited with code 0", "diagnosis_id": None,
        "diagnosis_title": None, "facts": {"python": {"version": "3.10.11", "executable": "/venv/bin/python"},
                                           "packages": {"torch": "2.1.2", "transformers": "4.44.0"},
                                           "torch": {"imported": True, "version": "2.1.2", "cuda_build": "12.1",
                                                     "cuda_available": True, "devices": [{"name": "RTX 3090"}]}},
        "dataset_dirs": ["img"], "model": None, "log_path": str(tmp_path / "run.log"), "report_path": None,
    }
    rec.update(over)
    return rec


@pytest.fixture
def home(tmp_path, monkeypatch):
    folder = tmp_path / "ldhome"
    monkeypatch.setenv("LORA_DOCTOR_HOME", str(folder))
    return folder


def cli_env(isolated_env, home: Path) -> dict:
    return dict(isolated_env, LORA_DOCTOR_HOME=str(home))


def rows(home: Path) -> list[tuple]:
    conn = sqlite3.connect(str(home / "history.sqlite3"))
    try:
        return conn.execute("SELECT id, outcome, exit_code FROM runs ORDER BY id").fetchall()
    finally:
        conn.close()


def test_record_run_stores_a_row_with_fingerprints_and_never_the_token(tmp_path, home):
    make_dataset(tmp_path)
    rec = record(tmp_path, argv=["accelerate", "launch", "train_network.py", f"--huggingface_token={TOKEN}"],
                 options={"output_dir": "out", "huggingface_token": TOKEN, "note": f"see {TOKEN}"})
    run_id = history.record_run(rec)
    assert run_id == 1
    store = history.open_store()
    run = store.get(run_id)
    store.close()
    assert run["outcome"] == "ok"
    assert run["dataset"][0]["path"] == str(tmp_path / "img")
    assert (run["dataset"][0]["images"], run["dataset"][0]["captions"]) == (3, 3)
    assert run["output_key"] == os.path.normcase(str(tmp_path / "out"))
    raw = b"".join(p.read_bytes() for p in home.iterdir())
    assert TOKEN.encode() not in raw and TOKEN[3:].encode() not in raw


def test_history_lists_recent_runs_newest_first_with_outcome_and_cause(tmp_path, home, isolated_env):
    make_dataset(tmp_path)
    history.record_run(record(tmp_path))
    history.record_run(record(tmp_path, exit_code=1, exit_cause="exited with code 1",
                              diagnosis_id="dataset.image_too_large_no_bucket", diagnosis_title="An image is too large"))
    history.record_run(record(tmp_path, exit_code=137, exit_cause="killed by SIGKILL"))
    history.record_run(record(tmp_path, exit_code=1, exit_cause="exit code 1"))
    proc = run_cli(["history"], env=cli_env(isolated_env, home))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["ID", "WHEN", "SCRIPT", "DATASET", "OUTCOME", "TOOK", "CAUSE"]
    assert lines[1].startswith("4 ") and re.search(r"failed \(1\) +1m00$", lines[1])  # nothing beyond the code
    assert lines[2].startswith("3 ") and re.search(r"failed \(137\) +1m00 +killed by SIGKILL$", lines[2])
    assert lines[3].startswith("2 ") and "failed (1)" in lines[3] and "dataset.image_too_large_no_bucket" in lines[3]
    assert lines[4].startswith("1 ") and " ok " in lines[4] and "img (3 img)" in lines[4]
    assert "4 of 4 runs" in proc.stdout

    data = json.loads(run_cli(["history", "--json", "-n", "1"], env=cli_env(isolated_env, home)).stdout)
    assert data["total"] == 4 and [r["id"] for r in data["runs"]] == [4]
    assert data["runs"][0]["exit_cause"] == "exit code 1"
    assert data["runs"][0]["dataset"][0]["images"] == 3


def test_history_with_no_database_says_so_and_creates_nothing(home, isolated_env):
    proc = run_cli(["history"], env=cli_env(isolated_env, home))
    assert proc.returncode == 0
    assert "No runs recorded yet" in proc.stdout
    assert not home.exists()


def test_history_show_prints_one_run_in_full_and_rejects_unknown_ids(tmp_path, home, isolated_env):
    make_dataset(tmp_path)
    history.record_run(record(tmp_path, exit_code=1, exit_cause="exited with code 1", diagnosis_id="auth.invalid_token",
                              diagnosis_title="The token is invalid"))
    env = cli_env(isolated_env, home)
    proc = run_cli(["history", "show", "1"], env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Run #1: failed (1) — auth.invalid_token")
    assert "accelerate launch train_network.py --output_dir out --learning_rate 1e-4" in proc.stdout
    assert "torch 2.1.2, transformers 4.44.0" in proc.stdout
    assert f"{tmp_path / 'img'}: 3 images, 3 captions" in proc.stdout
    shown = json.loads(run_cli(["history", "show", "last", "--json"], env=env).stdout)
    assert shown["id"] == 1 and shown["facts"]["packages"]["transformers"] == "4.44.0"
    assert shown["dataset_files"] == {str(tmp_path / "img"): 6}

    missing = run_cli(["history", "show", "99"], env=env)
    assert missing.returncode == 2 and "no run #99 in the history" in missing.stderr
    bad = run_cli(["history", "show", "yesterday"], env=env)
    assert bad.returncode == 2 and "RUN must be a run id" in bad.stderr


def test_prune_deletes_only_runs_older_than_the_age(tmp_path, home, isolated_env):
    old = time.time() - 100 * 86400
    history.record_run(record(tmp_path, started_at=old, ended_at=old + 60, facts={"packages": {"torch": "1.13.1"}}))
    history.record_run(record(tmp_path))
    history.record_run(record(tmp_path))  # same facts as run 2: one shared blob
    blobs = lambda: sqlite3.connect(str(home / "history.sqlite3")).execute("SELECT count(*) FROM blobs").fetchone()[0]  # noqa: E731
    assert blobs() == 2
    env = cli_env(isolated_env, home)
    proc = run_cli(["history", "prune", "--older-than", "90d"], env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Pruned 1 run started before" in proc.stdout and "2 remain" in proc.stdout
    assert [r[0] for r in rows(home)] == [2, 3]
    assert blobs() == 1  # the pruned run's facts went with it; the shared ones stayed
    shown = json.loads(run_cli(["history", "show", "3", "--json"], env=env).stdout)
    assert shown["facts"]["packages"] == {"torch": "2.1.2", "transformers": "4.44.0"}
    bad = run_cli(["history", "prune", "--older-than", "ninety days"], env=env)
    assert bad.returncode == 2 and "--older-than: 'ninety days' is not an age" in bad.stderr


def test_record_run_never_raises_and_warns_in_one_line(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LORA_DOCTOR_HOME", str(blocker / "sub"))
    assert history.record_run(record(tmp_path)) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("lora-doctor: warning: this run was not recorded")
    assert history.record_run({"options": "not a dict"}) is None  # garbage in: still no exception


def test_corrupt_database_is_moved_aside_and_a_fresh_one_used(tmp_path, home, capsys, isolated_env):
    home.mkdir()
    garbage = b"this is not sqlite at all " * 200
    (home / "history.sqlite3").write_bytes(garbage)
    assert history.record_run(record(tmp_path)) == 1
    err = capsys.readouterr().err
    assert "is unreadable" in err and "moved it to history.sqlite3.corrupt-" in err and "nothing was deleted" in err
    assert err.count("\n") == 1
    kept = list(home.glob("history.sqlite3.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == garbage
    assert rows(home) == [(1, "ok", 0)]

    # the CLI on a corrupt file: a clear line, a fresh file, the old one kept
    (home / "history.sqlite3").unlink()
    (home / "history.sqlite3").write_bytes(garbage)
    proc = run_cli(["history"], env=cli_env(isolated_env, home))
    assert proc.returncode == 0 and "is unreadable" in proc.stderr and "Traceback" not in proc.stderr
    assert len(list(home.glob("history.sqlite3.corrupt-*"))) == 2


def test_newer_schema_file_is_left_untouched_and_a_file_beside_it_used(tmp_path, home, capsys, isolated_env):
    home.mkdir()
    path = home / "history.sqlite3"
    conn = sqlite3.connect(str(path))
    conn.execute("CREATE TABLE runs_v9 (x)")
    conn.execute("PRAGMA user_version = 9")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    assert history.record_run(record(tmp_path)) == 1
    assert "written by a newer lora-doctor" in capsys.readouterr().err
    assert path.read_bytes() == before
    beside = history.fallback_path(path)
    assert sqlite3.connect(str(beside)).execute("SELECT count(*) FROM runs").fetchone() == (1,)
    proc = run_cli(["history"], env=cli_env(isolated_env, home))
    assert "written by a newer lora-doctor" in proc.stderr and "1 of 1 runs" in proc.stdout


def test_a_version_1_database_is_migrated_and_keeps_its_runs(tmp_path, home, isolated_env):
    home.mkdir()
    conn = sqlite3.connect(str(home / "history.sqlite3"))
    for statement in history.MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO runs (started_at, ended_at, script, outcome, exit_code) "
                 "VALUES (1700000000, 1700000060, 'train_network.py', 'ok', 0)")
    conn.commit()
    conn.close()
    assert history.record_run(record(tmp_path)) == 2
    conn = sqlite3.connect(str(home / "history.sqlite3"))
    assert conn.execute("PRAGMA user_version").fetchone() == (history.SCHEMA_VERSION,)
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    conn.close()
    assert {"runs_by_key", "runs_by_start"} <= indexes
    proc = run_cli(["history"], env=cli_env(isolated_env, home))
    assert "2 of 2 runs" in proc.stdout


WRITER = textwrap.dedent("""
    import sys, time
    from lora_doctor.history import store as history
    store = history.open_store()
    store.conn.execute("BEGIN IMMEDIATE")
    store.conn.execute("INSERT INTO runs (script, outcome, exit_code) VALUES ('half-written.py', 'failed', 1)")
    print("in transaction", flush=True)
    time.sleep(60)
""")


def test_a_writer_killed_mid_transaction_leaves_the_earlier_runs_intact(tmp_path, home):
    history.record_run(record(tmp_path))
    history.record_run(record(tmp_path, exit_code=1, exit_cause="exited with code 1"))
    proc = subprocess.Popen([sys.executable, "-c", WRITER], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)))
    try:
        assert proc.stdout.readline().strip() == "in transaction"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert rows(home) == [(1, "ok", 0), (2, "failed", 1)]
    assert history.record_run(record(tmp_path)) == 3  # and it is writable at once


CONCURRENT = textwrap.dedent("""
    import sys, time
    from lora_doctor.history import store as history
    tag = sys.argv[1]
    for i in range(50):
        rid = history.record_run({"script": "train_network.py", "argv": ["train_network.py"], "exit_code": 0,
                                  "options": {"output_dir": tag}, "cwd": "/", "started_at": time.time(),
                                  "ended_at": time.time()})
        assert rid is not None
""")


def test_two_wrappers_recording_at_once_lose_nothing(tmp_path, home):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT, tag], env=env, stderr=subprocess.PIPE, text=True)
             for tag in ("a", "b")]
    errs = [p.communicate(timeout=60)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert "warning" not in "".join(errs)
    conn = sqlite3.connect(str(home / "history.sqlite3"))
    counts = dict(conn.execute("SELECT output_dir, count(*) FROM runs GROUP BY output_dir").fetchall())
    conn.close()
    assert counts == {"a": 50, "b": 50}


def test_dataset_fingerprint_counts_and_changes_with_names_sizes_and_mtimes(tmp_path):
    folder = make_dataset(tmp_path, n=4)
    (folder / "10_cat" / "notes.md").write_text("ignored")
    (folder / "10_cat" / "cat0.caption").write_text("also a caption")
    info, manifest = dataset_fingerprint(str(folder))
    assert (info["images"], info["captions"], info["bytes"]) == (4, 5, 4 * 104 + 0 + 1 + 2 + 3)
    assert len(manifest) == 9
    os.utime(folder / "10_cat" / "cat1.txt", ns=(1_600_000_000_000_000_000,) * 2)
    touched, _ = dataset_fingerprint(str(folder))
    assert touched["hash"] != info["hash"] and touched["images"] == 4
    gone, _ = dataset_fingerprint(str(tmp_path / "nope"))
    assert gone["exists"] is False and gone["images"] == 0


def test_model_identity_of_a_file_a_folder_and_a_cached_repo(tmp_path, monkeypatch):
    model = tmp_path / "model.safetensors"
    model.write_bytes(b"x" * 1000)
    assert model_identity(str(model)) == {"kind": "file", "path": str(model), "size": 1000,
                                          "mtime": int(model.stat().st_mtime)}
    folder = tmp_path / "diffusers"
    (folder / "unet").mkdir(parents=True)
    (folder / "model_index.json").write_text("{}")
    (folder / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"y" * 500)
    ident = model_identity(str(folder))
    assert ident["kind"] == "folder" and ident["size"] == 502 and ident["files"] == 2
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    refs = tmp_path / "hf" / "hub" / "models--org--model" / "refs"
    refs.mkdir(parents=True)
    (refs / "main").write_text("0123456789abcdef0123456789abcdef01234567")
    assert model_identity("org/model", str(tmp_path)) == {"kind": "repo", "id": "org/model",
                                                          "revision": "0123456789abcdef0123456789abcdef01234567"}
    assert model_identity("org/other", str(tmp_path))["revision"] is None


def test_a_dataset_toml_stands_for_the_image_dirs_of_its_subsets(tmp_path, home):
    make_dataset(tmp_path, n=2)
    (tmp_path / "dataset.toml").write_text('[[datasets]]\nresolution = 512\n[[datasets.subsets]]\n'
                                           'image_dir = "img/10_cat"\nnum_repeats = 10\n', encoding="utf-8")
    run_id = history.record_run(record(tmp_path, dataset_dirs=["dataset.toml"],
                                       options={"output_dir": "out", "dataset_config": "dataset.toml"}))
    store = history.open_store()
    run = store.get(run_id)
    store.close()
    assert [(d["path"], d["images"]) for d in run["dataset"]] == [(str(tmp_path / "img" / "10_cat"), 2)]
    assert run["configs"]["dataset_config"]["sha256"]


def test_a_database_damaged_inside_is_moved_aside_when_read(tmp_path, home, isolated_env):
    for i in range(200):
        history.record_run(record(tmp_path, options={"output_dir": "out", "note": "x" * 1500 + str(i)}))
    path = home / "history.sqlite3"
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    with open(path, "r+b") as fh:  # two pages of garbage in the middle of the runs table
        fh.seek(path.stat().st_size // 2 // 4096 * 4096)
        fh.write(b"\xff" * 8192)
    damaged = path.read_bytes()
    env = cli_env(isolated_env, home)
    proc = run_cli(["history", "-n", "0"], env=env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "is unreadable (database disk image is malformed); moved it to history.sqlite3.corrupt-" in proc.stderr
    assert ".recover" in proc.stderr
    kept = list(home.glob("history.sqlite3.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_bytes() == damaged
    assert history.record_run(record(tmp_path)) == 1
    assert "1 of 1 runs" in run_cli(["history"], env=env).stdout
