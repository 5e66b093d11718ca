"""The diagnosis ranks a match on the root failure above a side remark of the same priority, even
when the side remark's signature is more specific (higher confidence on its own).

Real logs: complete sd-scripts runs from the corpus whose root failure is a bad
--pretrained_model_name_or_path (built-in `model.invalid_model_path_or_repo_id`, priority 50, one
condition). Beside it every accelerate log holds a side remark: accelerate's own
`subprocess.CalledProcessError` traceback (a wrapper, not the cause) and INFO lines. A user's
signature (a plugin folder, default priority 50) that matches those with many conditions must not
push the root cause down to "Other plausible causes"."""

from __future__ import annotations

import json
import textwrap

import pytest

from support import DATA, run_cli
from lora_doctor.diagnose.match import diagnose_text

ROOT_CAUSE = "model.invalid_model_path_or_repo_id"
ROOT_TITLE = "✗ The base model is neither an existing file/folder nor a valid Hub repo id"

# accelerate's CalledProcessError: a failure of the log, but not on the root failure's chain
LAUNCHER = r"""
[[signature]]
id = "local.accelerate_child_failed"
title = "accelerate launch: the training process failed"
why = "accelerate's launcher re-raises the training process's exit status as CalledProcessError."
fix = ["Read the traceback above accelerate's own."]

[signature.match]
exception = ["subprocess.CalledProcessError"]
message = "^Command '\\[.*\\]' returned non-zero exit status \\d+\\.?$"
frame = 'accelerate[\\/]commands[\\/]launch\.py:simple_launcher'
log_any = ['returned non-zero exit status \d+']
"""

# log lines that are no part of any failure: a remark about the run, not about why it stopped
ON_CPU = r"""
[[signature]]
id = "local.training_on_cpu"
title = "The training runs on the CPU"
why = "accelerate found no GPU."
fix = ["Check that torch sees the GPU."]

[signature.match]
log_all = ['accelerator device: cpu', 'preparing accelerator', 'loading model for process 0/1']
log_any = ['INFO\s+prepare dataset']
"""

SIDE = {"local.accelerate_child_failed": LAUNCHER, "local.training_on_cpu": ON_CPU}


def corpus_log(case_id: str) -> str:
    for line in (DATA / "corpus" / "sdscripts-runs.dev.jsonl").read_text("utf-8").splitlines():
        case = json.loads(line)
        if case["id"] == case_id:
            assert case["cause"] == ROOT_CAUSE
            return case["log"]
    raise AssertionError(f"{case_id} is not in the corpus")


def plugin_dir(tmp_path, *texts: str):
    folder = tmp_path / "my-signatures"
    folder.mkdir()
    for i, text in enumerate(texts):
        (folder / f"mine{i}.toml").write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


@pytest.fixture(autouse=True)
def _no_user_plugins(monkeypatch):
    monkeypatch.delenv("LORA_DOCTOR_PLUGIN_PATH", raising=False)


@pytest.mark.parametrize("case_id", ["b2_model_dir_not_found", "b1_model_file_not_found"])
@pytest.mark.parametrize("side_id", sorted(SIDE))
def test_the_root_failures_cause_outranks_a_more_specific_side_remark(tmp_path, case_id, side_id):
    report = diagnose_text(corpus_log(case_id), plugin_dirs=[str(plugin_dir(tmp_path, SIDE[side_id]))])
    assert not report.signature_errors
    ids = [d.signature_id for d in report.diagnoses]
    assert ids[:2] == [ROOT_CAUSE, side_id], ids
    # the side remark is the more specific signature: only where it sits keeps it second
    assert report.diagnoses[1].confidence > report.diagnoses[0].confidence


def test_diagnose_names_the_root_cause_first_and_lists_the_wrappers_signature_after(tmp_path, isolated_env):
    log = tmp_path / "train.log"
    log.write_text(corpus_log("b2_model_dir_not_found"), encoding="utf-8")
    folder = plugin_dir(tmp_path, LAUNCHER, ON_CPU)
    proc = run_cli(["diagnose", str(log), "--plugin-dir", str(folder)], env=isolated_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith(ROOT_TITLE + "\n"), proc.stdout[:300]
    assert f"cause: {ROOT_CAUSE} (confidence 62%)" in proc.stdout
    others = proc.stdout.split("Other plausible causes:\n", 1)[1]
    assert "accelerate launch: the training process failed [local.accelerate_child_failed]" in others
    assert "The training runs on the CPU [local.training_on_cpu]" in others
    data = json.loads(run_cli(["diagnose", str(log), "--json", "--plugin-dir", str(folder)], env=isolated_env).stdout)
    assert [d["id"] for d in data["diagnoses"]][:1] == [ROOT_CAUSE]
