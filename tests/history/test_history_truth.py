"""What the history says must be true: secret values never stored, a NaN run is not a success,
`history show` without an id shows the latest, and `diff` compares the latest run with the last good
one before it and names every command difference (added, removed, changed options; a downgrade as a
downgrade)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from lora_doctor.history import store as history

TOKEN = "hf_" + "ZxCvBnMaSdFgHjKlQwErTyUiOpZxCvBnMa"
SECRET_VALUES = {"wandb_api_key": "plainwandbvalue77", "wandb-api-key": "dashedvalue88", "apikey": "apikeyvalue99",
                 "my_db_password": "dbpasswordvalue11", "client_secret": "clientsecretvalue22"}


@pytest.fixture
def home(tmp_path, monkeypatch):
    folder = tmp_path / "ldhome"
    monkeypatch.setenv("LORA_DOCTOR_HOME", str(folder))
    return folder


def record(tmp_path: Path, exit_code: int = 0, options: dict | None = None, facts: dict | None = None, **over) -> dict:
    opts = {"output_dir": "out", "learning_rate": "1e-4", **(options or {})}
    argv = ["accelerate", "launch", "train_network.py"]
    for key, value in opts.items():
        argv += [f"--{key}"] + ([] if value is True else [str(value)])
    now = time.time()
    rec = {"started_at": now, "ended_at": now + 1, "argv": argv, "script": "train_network.py", "options": opts,
           "cwd": str(tmp_path), "exit_code": exit_code, "exit_cause": f"exit code {exit_code}",
           "diagnosis_id": None, "diagnosis_title": None, "facts": facts or {}, "dataset_dirs": [], "model": None,
           "log_path": None, "report_path": None}
    rec.update(over)
    return rec


def cli(args, home: Path, env: dict):
    return subprocess.run([sys.executable, "-m", "lora_doctor", *args], capture_output=True, text=True,
                          env=dict(env, LORA_DOCTOR_HOME=str(home)), timeout=60)


def stored_text(home: Path) -> str:
    """Every byte of the history folder and every blob decompressed, as text."""
    parts = [p.read_bytes() for p in home.rglob("*") if p.is_file()]
    conn = sqlite3.connect(home / "history.sqlite3")
    for (data,) in conn.execute("SELECT data FROM blobs"):
        try:
            parts.append(zlib.decompress(data))
        except zlib.error:
            parts.append(bytes(data))
    parts += [repr(row).encode() for row in conn.execute("SELECT * FROM runs")]
    conn.close()
    return b"\n".join(parts).decode("utf-8", "replace")


def test_secret_option_values_are_never_stored_nor_shown(tmp_path, home, isolated_env):
    """Values that look like nothing but are secret by their option's name: only name-based
    redaction keeps them out (switch it off and this test fails)."""
    model = f"https://u:{TOKEN}@huggingface.co/org/model"
    rec = record(tmp_path, options={**SECRET_VALUES, "pretrained_model_name_or_path": model}, model=model,
                 facts={"env": {"WANDB_API_KEY": "factsecretvalue33"}, "note": f"url?token%3D{TOKEN}"})
    rec["argv"] += ["WANDB_API_KEY=envvalue44"]
    run_id = history.record_run(rec)
    assert run_id == 1
    secrets = [*SECRET_VALUES.values(), TOKEN[3:], "factsecretvalue33", "envvalue44"]
    text = stored_text(home)
    assert [s for s in secrets if s in text] == []
    for args in (["history", "show"], ["history", "show", "1", "--json"], ["history", "--json"]):
        out = cli(args, home, isolated_env)
        assert out.returncode == 0, out.stderr
        assert [s for s in secrets if s in out.stdout + out.stderr] == [], args
        if "--json" in args:
            json.loads(out.stdout)
    shown = json.loads(cli(["history", "show", "--json"], home, isolated_env).stdout)
    assert shown["options"]["wandb_api_key"] == shown["options"]["apikey"] == "[REDACTED]"
    assert shown["options"]["learning_rate"] == "1e-4"  # the rest is kept
    assert shown["model"] == "https://u:[REDACTED]@huggingface.co/org/model"


def test_history_show_without_an_id_shows_the_latest(tmp_path, home, isolated_env):
    empty = cli(["history", "show"], home, isolated_env)
    assert empty.returncode == 2 and "no runs recorded yet" in empty.stderr
    history.record_run(record(tmp_path))
    history.record_run(record(tmp_path, exit_code=1))
    out = cli(["history", "show"], home, isolated_env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Run #2: failed (1)")


def test_a_run_whose_loss_went_nan_is_not_a_success(tmp_path, home, isolated_env):
    good = history.record_run(record(tmp_path))
    nan = history.record_run(record(tmp_path, silent_failure="the loss went NaN", learning_rate="1e-2"))
    stopped = history.record_run(record(tmp_path, exit_code=130, stopped="nan"))
    store = history.open_store()
    try:
        assert [store.get(i)["outcome"] for i in (good, nan, stopped)] == ["ok", "failed", "failed"]
        assert store.latest_id("ok") == good
    finally:
        store.close()
    later = history.record_run(record(tmp_path, exit_code=1))
    out = cli(["diff"], home, isolated_env)
    assert out.stdout.startswith(f"From run #{good} (ok"), out.stdout  # never the NaN run
    assert f"to run #{later} (failed" in out.stdout


def test_bare_diff_is_the_latest_run_against_the_last_good_one_before_it(tmp_path, home, isolated_env):
    facts_old = {"packages": {"torch": "2.1.2", "transformers": "4.46.2", "numpy": "1.26.4"},
                 "python": {"version": "3.10.11", "executable": "/v/bin/python"}}
    facts_new = {"packages": {"torch": "2.1.2", "transformers": "4.44.0", "numpy": "2.0.1"},
                 "python": {"version": "3.10.11", "executable": "/v/bin/python"}}
    history.record_run(record(tmp_path, exit_code=1, options={"network_dim": "8"}, facts=facts_old))  # an old failure
    good = history.record_run(record(tmp_path, options={"network_dim": "16", "cache_latents": True, "seed": "1"},
                                     facts=facts_old))
    latest = history.record_run(record(tmp_path, exit_code=1, options={"network_dim": "32", "xformers": True, "seed": "1"},
                                       facts=facts_new))
    out = cli(["diff"], home, isolated_env)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"From run #{good} (ok") and f"to run #{latest} (failed" in lines[0]
    assert "  ! transformers 4.46.2 → 4.44.0 (downgraded)" in lines
    assert "  ! numpy 1.26.4 → 2.0.1 (upgraded)" in lines
    assert "  + new option --xformers" in lines
    assert "  ~ --network_dim 16 → 32" in lines
    assert "  - option --cache_latents removed" in lines
    assert "No recorded difference" not in out.stdout
    data = json.loads(cli(["diff", "--json"], home, isolated_env).stdout)
    kinds = {(c["kind"], c["name"]): c["text"] for c in data["changes"]}
    assert kinds[("option", "cache_latents")] == "option --cache_latents removed"
    # a success after the failure: the latest run is that success, compared with the good one before it
    again = history.record_run(record(tmp_path, options={"network_dim": "64", "seed": "1"}, facts=facts_old))
    out = cli(["diff"], home, isolated_env)
    assert out.stdout.startswith(f"From run #{good} (ok") and f"to run #{again} (ok" in out.stdout, out.stdout
    assert "  ~ --network_dim 16 → 64" in out.stdout.splitlines()


def test_diff_names_a_command_difference_the_options_do_not_show(tmp_path, home, isolated_env):
    a = record(tmp_path)
    b = record(tmp_path, exit_code=1)
    b["argv"] = b["argv"] + ["extra_positional"]
    history.record_run(a)
    history.record_run(b)
    out = cli(["diff"], home, isolated_env)
    assert "~ command changed: added extra_positional" in out.stdout, out.stdout
    assert "No recorded difference" not in out.stdout
