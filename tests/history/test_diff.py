"""`lora-doctor diff` and the post-mortem's "what changed since the last success"."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from support import run_cli
from lora_doctor.history import store as history
from lora_doctor.target.probe import run_probe


def fake_dist(site: Path, name: str, version: str) -> None:
    """A real (tiny) installed distribution: importlib.metadata finds it on PYTHONPATH."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """Facts from the real probe in two environments differing only in the installed transformers."""
    facts = {}
    for version in ("4.44.0", "4.46.2"):
        site = tmp_path_factory.mktemp(f"site-{version}")
        fake_dist(site, "transformers", version)
        env = dict(os.environ, PYTHONPATH=str(site))
        facts[version] = run_probe(sys.executable, timeout=60, env=env)
        assert facts[version]["packages"]["transformers"] == version, facts[version]
    return facts


@pytest.fixture
def home(tmp_path, monkeypatch):
    folder = tmp_path / "ldhome"
    monkeypatch.setenv("LORA_DOCTOR_HOME", str(folder))
    return folder


def dataset(root: Path, n: int) -> Path:
    folder = root / "img" / "10_cat"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"cat{i}.png").write_bytes(bytes(200))
        (folder / f"cat{i}.txt").write_text("a cat")
    return folder.parent


def record(tmp_path: Path, facts: dict, exit_code: int = 0, output_dir: str = "out", **options) -> dict:
    opts = {"output_dir": output_dir, "train_data_dir": "img", "learning_rate": "1e-4", **options}
    argv = ["accelerate", "launch", "--num_processes", "1", "train_network.py"]
    for key, value in opts.items():
        argv += [f"--{key}"] + ([] if value is True else [str(value)])
    now = time.time()
    return {"started_at": now, "ended_at": now + 1, "argv": argv, "script": "train_network.py", "options": opts,
            "cwd": str(tmp_path), "exit_code": exit_code,
            "exit_cause": f"exited with code {exit_code}", "diagnosis_id": None if exit_code == 0 else "unknown",
            "diagnosis_title": None, "facts": facts, "dataset_dirs": ["img"], "model": None,
            "log_path": None, "report_path": None}


def test_diff_names_the_upgraded_package_the_new_image_and_the_changed_option_in_that_order(
        tmp_path, home, probed, isolated_env):
    dataset(tmp_path, 3)
    ok = history.record_run(record(tmp_path, probed["4.44.0"]))
    (tmp_path / "img" / "10_cat" / "new_cat.png").write_bytes(bytes(300))
    failed = history.record_run(record(tmp_path, probed["4.46.2"], exit_code=1, learning_rate="5e-4",
                                       network_dim="32"))
    proc = run_cli(["diff"], env=dict(isolated_env, LORA_DOCTOR_HOME=str(home)))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"From run #{ok} (ok, ") and f"to run #{failed} (failed, " in lines[0]
    assert lines[1] == "  train_network.py → out"
    assert lines[2:6] == [
        "  ! transformers 4.44.0 → 4.46.2 (upgraded)",
        f"  ! dataset {tmp_path / 'img'}: 3 → 4 images; added: 10_cat/new_cat.png; 600 B → 900 B",
        "  + new option --network_dim=32",
        "  ~ --learning_rate 1e-4 → 5e-4",
    ]
    assert lines[-1] == "4 changes, most suspicious first."

    text = history.previous_success_diff(failed)
    assert text.splitlines()[0].startswith(f"What changed since the last success (run #{ok}, ")
    assert text.splitlines()[1] == "  ! transformers 4.44.0 → 4.46.2 (upgraded)"

    data = json.loads(run_cli(["diff", str(ok), str(failed), "--json"],
                              env=dict(isolated_env, LORA_DOCTOR_HOME=str(home))).stdout)
    assert (data["a"]["id"], data["b"]["id"]) == (ok, failed)
    assert [(c["kind"], c["name"]) for c in data["changes"]] == [
        ("package", "transformers"), ("dataset", str(tmp_path / "img")), ("option", "network_dim"),
        ("option", "learning_rate")]
    assert data["changes"][0]["old"] == "4.44.0" and data["changes"][0]["new"] == "4.46.2"


def test_default_diff_compares_with_the_success_of_the_same_script_and_output_folder(tmp_path, home, isolated_env):
    facts = {"packages": {"torch": "2.1.2"}}
    same = history.record_run(record(tmp_path, facts, output_dir="out"))
    history.record_run(record(tmp_path, facts, output_dir="elsewhere", network_alpha="16"))
    failed = history.record_run(record(tmp_path, facts, exit_code=1, output_dir="out", max_train_epochs="20"))
    proc = run_cli(["diff"], env=dict(isolated_env, LORA_DOCTOR_HOME=str(home)))
    assert f"From run #{same} (ok" in proc.stdout and f"to run #{failed} (failed" in proc.stdout
    assert "network_alpha" not in proc.stdout and "new option --max_train_epochs=20" in proc.stdout
    one = run_cli(["diff", str(failed)], env=dict(isolated_env, LORA_DOCTOR_HOME=str(home)))
    assert f"From run #{same} (ok" in one.stdout


def test_diff_with_nothing_to_compare_says_why_and_exits_1(tmp_path, home, isolated_env):
    env = dict(isolated_env, LORA_DOCTOR_HOME=str(home))
    empty = run_cli(["diff"], env=env)
    assert empty.returncode == 1 and "No runs recorded yet" in empty.stdout
    history.record_run(record(tmp_path, {}))
    alone = run_cli(["diff"], env=env)
    assert alone.returncode == 1 and "Run #1 is the first recorded run of train_network.py → out" in alone.stdout
    history.record_run(record(tmp_path, {}, exit_code=1, output_dir="other"))
    other = run_cli(["diff"], env=env)
    assert other.returncode == 1 and "Run #2 is the first recorded run of train_network.py → other" in other.stdout
    unknown = run_cli(["diff", "1", "42"], env=env)
    assert unknown.returncode == 2 and "no run #42 in the history" in unknown.stderr


def test_previous_success_diff_is_none_without_an_earlier_success_and_plain_when_nothing_changed(tmp_path, home):
    facts = {"packages": {"torch": "2.1.2"}, "python": {"version": "3.10.11", "executable": "/p"}}
    first_failure = history.record_run(record(tmp_path, facts, exit_code=1))
    assert history.previous_success_diff(first_failure) is None
    assert history.previous_success_diff(None) is None
    history.record_run(record(tmp_path, facts))
    again = history.record_run(record(tmp_path, facts, exit_code=1))
    text = history.previous_success_diff(again)
    assert text.startswith("Nothing recorded changed since the last success (run #2")


def test_diff_sees_a_torch_cuda_change_a_caption_edit_a_config_edit_and_a_model_rewritten(tmp_path, home):
    dataset(tmp_path, 2)
    toml = tmp_path / "dataset.toml"
    toml.write_text("[general]\nshuffle_caption = true\n")
    model = tmp_path / "model.safetensors"
    model.write_bytes(bytes(1000))
    gpu = {"imported": True, "cuda_build": "12.1", "cuda_available": True, "devices": [{"name": "RTX 3090"}]}
    cpu = {"imported": True, "cuda_build": None, "cuda_available": False, "devices": []}
    a = record(tmp_path, {"packages": {"torch": "2.1.2+cu121", "einops": "0.7.0"}, "torch": gpu},
               dataset_config="dataset.toml", pretrained_model_name_or_path="model.safetensors")
    a["model"] = "model.safetensors"
    ok = history.record_run(a)
    caption = tmp_path / "img" / "10_cat" / "cat1.txt"
    caption.write_text("a cat, rewritten caption")
    toml.write_text("[general]\nshuffle_caption = false\n")
    model.write_bytes(bytes(2000))
    b = dict(a, facts={"packages": {"torch": "2.1.2+cpu", "einops": "0.8.0"}, "torch": cpu}, exit_code=1,
             started_at=time.time() + 5)
    failed = history.record_run(b)
    store = history.open_store()
    from lora_doctor.history.diff import diff_runs

    changes = [c.text for c in diff_runs(store.get(ok), store.get(failed))]
    store.close()
    assert changes == [
        "torch 2.1.2+cu121 → 2.1.2+cpu (another build)",
        "torch CUDA build 12.1 → none (CPU)",
        "CUDA is no longer available to torch",
        f"dataset {tmp_path / 'img'}: modified: 10_cat/cat1.txt",
        f"contents of --dataset_config {toml} changed",
        "model model.safetensors changed on disk (1000 B → 2.0 KB)",
        "GPU RTX 3090 → none",
        "einops 0.7.0 → 0.8.0 (upgraded)",
    ]
