"""`lora-doctor report`: one redacted Markdown block (versions, GPU, command, verdicts, diagnosis)."""

from __future__ import annotations

import sys

from support import run_cli
from lora_doctor.commands.report import MAX_LINES, build_report
from lora_doctor.host.doctor import CheckResult
from lora_doctor.model import Check, Finding, Severity
from lora_doctor.testing import make_context

TOKEN = "hf_plantedTOKENabcdefghijklmnopqrstuvw"
OOM_LOG = f"""\
steps:   3%|▎         | 3/100 [00:05<02:41,  1.66s/it, avr_loss=0.113]
HF_TOKEN={TOKEN} accelerate launch train_network.py --wandb_api_key=SECRET
Traceback (most recent call last):
  File "/home/u/sd-scripts/train_network.py", line 1115, in <module>
    trainer.train(args)
  File "/home/u/venv/lib/python3.10/site-packages/torch/nn/modules/module.py", line 1501, in _call_impl
    return forward_call(*args, **kwargs)
torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 8.00 GiB of which 0 bytes is free. Of the allocated memory 6.91 GiB is allocated by PyTorch, and 113.52 MiB is reserved by PyTorch but unallocated.
"""
COMMAND = ["accelerate", "launch", "train_network.py", "--train_batch_size=4", "--resolution=512",
           "--wandb_api_key=SECRET", "--huggingface_token", TOKEN, "--output_dir=out"]


def test_report_with_a_log_is_redacted_short_and_names_the_cause(tmp_path, isolated_env):
    log = tmp_path / "train.log"
    log.write_text(OOM_LOG, encoding="utf-8")
    env = dict(isolated_env, HF_TOKEN=TOKEN)
    proc = run_cli(["report", "--offline", "--only", "args", "--python", sys.executable, "--log", str(log), "--",
                    *COMMAND], env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert TOKEN not in text and "SECRET" not in text and TOKEN not in proc.stderr
    assert text.startswith("### lora-doctor report") and len(text.splitlines()) < MAX_LINES
    assert "**Diagnosis of train.log**" in text and "`cuda.oom`" in text and "out of memory" in text.lower()
    assert "--wandb_api_key=[REDACTED]" in text and "--huggingface_token [REDACTED]" in text
    for fact in ("lora-doctor 0.1", "Python ", "torch", "GPU:", "sd-scripts", "**Checks**"):
        assert fact in text, fact


def _results(n: int) -> list[CheckResult]:
    out = []
    for i in range(n):
        check = Check(id=f"t.c{i}", title=f"Check {i}", run=lambda ctx: ())
        found = [Finding(Severity.ERROR, f"problem {i} with --wandb_api_key SECRET in hf_token {TOKEN}", cause="x.y"),
                 Finding(Severity.WARN, "another")]
        out.append(CheckResult(check, "error", found))
    out.append(CheckResult(Check(id="t.skip", title="Skipped one", run=lambda ctx: ()), "skipped",
                           skipped_reason="the dataset could not be read"))
    return out


def test_report_stays_under_the_limit_with_many_problems_and_masks_secret_values():
    ctx = make_context(COMMAND)
    results = _results(80)
    text = build_report(ctx, results, {"errors": 80, "warnings": 80})
    lines = text.splitlines()
    assert len(lines) < MAX_LINES
    assert "… and" in text and "more (run `lora-doctor env` for all)" in text
    assert "SECRET" not in text and TOKEN not in text
    assert "- – Skipped one: skipped (the dataset could not be read)" in text
    assert "- ✗ Check 0: problem 0" in text and "(+1 more)" in text


def test_report_last_uses_the_recorded_run(tmp_path, isolated_env):
    from lora_doctor.history import store

    log = tmp_path / "run.log"
    log.write_text(OOM_LOG, encoding="utf-8")
    # the autouse fixture's LORA_DOCTOR_HOME: the CLI below (isolated_env copies it) reads this history
    run_id = store.record_run({"argv": COMMAND, "script": "train_network.py", "options": {"output_dir": "out"},
                               "cwd": str(tmp_path), "exit_code": 1, "exit_cause": "exit code 1",
                               "log_path": str(log), "started_at": 1.0, "ended_at": 2.0})
    assert run_id is not None
    proc = run_cli(["report", "--offline", "--only", "args", "--python", sys.executable, "--last"],
                   env=isolated_env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "the last run, failed" in proc.stdout and "`cuda.oom`" in proc.stdout
    assert TOKEN not in proc.stdout and "SECRET" not in proc.stdout


def test_report_last_without_history_is_a_usage_error(tmp_path, isolated_env):
    proc = run_cli(["report", "--offline", "--last"], env=isolated_env, cwd=tmp_path)
    assert proc.returncode == 2 and "no run recorded yet" in proc.stderr
