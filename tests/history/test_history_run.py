"""End to end: runs through the real `lora-doctor run` wrapper are recorded, and a failure after a
success is explained by what changed (an upgraded package, a new image, a changed option)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import ROOT

TINY = 'import sys\nprint("step 1/1 loss=0.1")\nsys.exit(1 if "--fail" in sys.argv else 0)\n'


def fake_dist(site: Path, name: str, version: str) -> Path:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8")
    return site


def wrapped(args, env, cwd):
    """`lora-doctor run --force --offline --only python -- python tiny.py ARGS` for real."""
    cmd = [sys.executable, "-m", "lora_doctor", "run", "--force", "--offline", "--only", "python", "--",
           sys.executable, "tiny.py", *args]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=120,
                          encoding="utf-8", errors="replace")


def test_runs_through_the_wrapper_are_recorded_and_the_failure_names_what_changed(tmp_path, isolated_env):
    probe = subprocess.run([sys.executable, "-m", "lora_doctor", "run", "--help"], capture_output=True, text=True,
                           cwd=ROOT, timeout=60)
    if "--force" not in probe.stdout:
        pytest.skip("`lora-doctor run` is not built yet")
    (tmp_path / "tiny.py").write_text(TINY, encoding="utf-8")
    images = tmp_path / "img" / "10_cat"
    images.mkdir(parents=True)
    for i in range(3):
        (images / f"cat{i}.png").write_bytes(bytes(100))
    home = tmp_path / "ldhome"
    env = dict(isolated_env, LORA_DOCTOR_HOME=str(home), PYTHONPATH=str(ROOT))
    old_site = fake_dist(tmp_path / "site-old", "transformers", "4.44.0")
    new_site = fake_dist(tmp_path / "site-new", "transformers", "4.46.2")

    first = wrapped(["--output_dir", "out", "--train_data_dir", "img", "--learning_rate", "1e-4"],
                    dict(env, PYTHONPATH=f"{old_site}{os.pathsep}{ROOT}"), tmp_path)
    assert first.returncode == 0, first.stderr
    (images / "cat_new.png").write_bytes(bytes(100))
    second = wrapped(["--output_dir", "out", "--train_data_dir", "img", "--learning_rate", "5e-4", "--fail"],
                     dict(env, PYTHONPATH=f"{new_site}{os.pathsep}{ROOT}"), tmp_path)
    assert second.returncode == 1
    assert "step 1/1 loss=0.1" in second.stdout  # the child's output, untouched
    post = second.stderr
    assert "What changed since the last success (run #1" in post
    assert "! transformers 4.44.0 → 4.46.2 (upgraded)" in post
    assert "added: 10_cat/cat_new.png" in post
    assert "+ new option --fail" in post and "~ --learning_rate 1e-4 → 5e-4" in post
    assert post.index("transformers 4.44.0") < post.index("cat_new.png") < post.index("--fail")

    listing = json.loads(subprocess.run([sys.executable, "-m", "lora_doctor", "history", "--json"], env=env,
                                        capture_output=True, text=True, timeout=60).stdout)
    assert [(r["id"], r["outcome"], r["exit_code"]) for r in listing["runs"]] == [(2, "failed", 1), (1, "ok", 0)]
    assert listing["runs"][0]["dataset"][0]["images"] == 4
    diff = subprocess.run([sys.executable, "-m", "lora_doctor", "diff"], env=env, capture_output=True, text=True,
                          timeout=60, encoding="utf-8")
    assert diff.returncode == 0
    assert diff.stdout.splitlines()[2] == "  ! transformers 4.44.0 → 4.46.2 (upgraded)"
