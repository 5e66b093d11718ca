"""`lora-doctor run` end to end: the pre-flight gate, --force/--check-only, the log folder,
report.json, the post-mortem, and real failures from real libraries."""

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.run_helpers import TRUE, child, child_env, run_pipe, wrapper_argv
from support.sdscripts_fixture import make_checkout

HAS_DIAGNOSIS = importlib.util.find_spec("lora_doctor.diagnose.match") is not None


@pytest.fixture
def checkout(tmp_path):
    return make_checkout(tmp_path / "sd-scripts")


def _run(args, env, cwd, timeout=60):
    return subprocess.run([sys.executable, "-m", "lora_doctor", "run", "--offline", "--python", TRUE, *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout)


def test_an_error_stops_the_launch_with_exit_78(isolated_env, checkout):
    proc = _run(["--only", "args", "--", sys.executable, "train_network.py", "--network_module=networks.lora",
                 "--learning_rat=1e-4", "--cache_latents", "--color_aug"], isolated_env, checkout)
    assert proc.returncode == 78
    assert not (checkout / "launched.json").exists()
    assert "--cache_latents cannot be used with --color_aug" in proc.stderr
    assert "--learning_rat is accepted as --learning_rate" in proc.stderr
    assert "not launching" in proc.stderr and "--force" in proc.stderr
    assert proc.stdout == ""  # our own output never goes to stdout


def test_force_launches_anyway_and_shows_the_checks_after(isolated_env, checkout):
    proc = _run(["--only", "args", "--force", "--", sys.executable, "train_network.py",
                 "--network_module=networks.lora", "--cache_latents", "--color_aug", "--output_dir=out"],
                isolated_env, checkout)
    assert proc.returncode == 0
    assert json.loads((checkout / "launched.json").read_text())["color_aug"] == "True"
    assert proc.stdout == "training with 1\n"
    assert "--cache_latents cannot be used with --color_aug" in proc.stderr
    logs = list((checkout / "out" / "lora-doctor").glob("*/train.log"))
    assert len(logs) == 1 and logs[0].read_text() == "training with 1\n"
    report = json.loads((logs[0].parent / "report.json").read_text())
    assert report["exit"]["code"] == 0
    assert any(f["cause"] == "args.incompatible_options" for c in report["findings"] for f in c["findings"])


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_a_misspelled_only_is_a_usage_error_and_nothing_launches(isolated_env, checkout, force):
    proc = _run(["--only", "arsg", *force, "--", sys.executable, "train_network.py",
                 "--network_module=networks.lora"], isolated_env, checkout)
    assert proc.returncode == 2
    assert "--only arsg: no check has that id, family or title; did you mean args?" in proc.stderr
    assert not (checkout / "launched.json").exists()


def test_check_only_never_launches(isolated_env, checkout):
    ok = _run(["--only", "args", "--check-only", "--", sys.executable, "train_network.py",
               "--network_module=networks.lora"], isolated_env, checkout)
    assert ok.returncode == 0 and "look right" in ok.stderr
    bad = _run(["--only", "args", "--check-only", "--", sys.executable, "train_network.py",
                "--network_module=networks.lorra"], isolated_env, checkout)
    assert bad.returncode == 78 and "did you mean networks.lora?" in " ".join(bad.stderr.split())  # prose wraps
    assert not (checkout / "launched.json").exists()


def test_config_file_values_reach_the_checks(isolated_env, checkout):
    (checkout / "cfg.toml").write_text('[model]\nfull_fp16 = true\n[training]\nmixed_precision = "bf16"\n')
    proc = _run(["--only", "args", "--check-only", "--", sys.executable, "train_network.py",
                 "--network_module=networks.lora", "--config_file=cfg"], isolated_env, checkout)
    assert proc.returncode == 78
    assert "--full_fp16 needs --mixed_precision=fp16 (it is bf16)" in proc.stderr
    fixed = _run(["--only", "args", "--check-only", "--", sys.executable, "train_network.py",
                  "--network_module=networks.lora", "--config_file=cfg", "--mixed_precision=fp16"],
                 isolated_env, checkout)
    assert fixed.returncode == 0, fixed.stderr  # the command line wins over the file, as in sd-scripts


def test_secrets_redacted_in_log_and_report(isolated_env, checkout, tmp_path):
    token = "hf_" + "Zz9" * 10
    proc = _run(["--only", "args", "--log", str(tmp_path / "t.log"), "--", sys.executable, "train_network.py",
                 "--network_module=networks.lora", f"--huggingface_token={token}", "--wandb_api_key", "s3cr3tvalue"],
                dict(isolated_env, TRAIN_EXIT="1"), checkout)
    assert proc.returncode == 1
    report = (tmp_path / "t.report.json").read_text()
    assert token not in report and "s3cr3tvalue" not in report
    assert "--huggingface_token=[REDACTED]" in report
    assert token not in proc.stderr and "s3cr3tvalue" not in proc.stderr


def test_exit_0_with_no_data_found_is_a_failure(isolated_env, checkout, tmp_path):
    proc = _run(["--only", "args", "--log", str(tmp_path / "nd.log"), "--", sys.executable, "train_network.py",
                 "--network_module=networks.lora"], dict(isolated_env, TRAIN_NO_DATA="1"), checkout)
    assert proc.returncode == 0  # the child's code, even so
    assert "exited 0, but its log says 'No data found'" in proc.stderr
    assert json.loads((tmp_path / "nd.report.json").read_text())["silent_failure"] == "No data found"


def test_torch_asked_for_cuda_is_diagnosed(isolated_env, tmp_path):
    cmd = [sys.executable, child("torch_cuda.py")]
    direct = subprocess.run(cmd, capture_output=True, env=child_env(isolated_env, COLUMNS="200"), timeout=120)
    proc = subprocess.run(wrapper_argv(cmd, log=tmp_path / "cuda.log"), capture_output=True,
                          env=isolated_env, timeout=120)
    assert proc.returncode == direct.returncode == 1
    assert proc.stdout == direct.stdout
    assert direct.stderr in proc.stderr  # the traceback stays on stderr
    assert b"Torch not compiled with CUDA enabled" in proc.stderr
    err = proc.stderr.decode()
    assert f"log: {tmp_path / 'cuda.log'}" in err
    if HAS_DIAGNOSIS:
        assert "cuda.torch_cpu_build" in err  # the post-mortem names the cause
        assert json.loads((tmp_path / "cuda.report.json").read_text())["diagnosis"]["diagnoses"]
    else:
        assert "the diagnosis is not available" in err


def test_accelerate_launch_end_to_end(isolated_env, tmp_path):
    """A real `accelerate launch` on the CPU: fp16 weights meet float inputs (sd-scripts'
    --mixed_precision=fp16 without a GPU) and torch refuses; then the same script in fp32 succeeds."""
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate, "accelerate is installed in the venv"
    base = [accelerate, "launch", "--num_processes", "1", "--num_machines", "1", "--dynamo_backend", "no",
            "--num_cpu_threads_per_process", "1"]
    env = dict(isolated_env, TQDM_DISABLE="1")
    fail = subprocess.run(wrapper_argv([*base, "--mixed_precision", "fp16", child("fp16_cpu.py")], "--force",
                                       log=tmp_path / "fp16.log"), capture_output=True, env=env, timeout=180)
    assert fail.returncode == 1  # accelerate's own exit code: CalledProcessError
    assert b"mixed_precision fp16" in fail.stdout
    assert b"mat1 and mat2 must have the same dtype" in fail.stderr  # tracebacks stay on stderr
    assert b"returned non-zero exit status 1" in fail.stderr
    assert b"mat1 and mat2" in (tmp_path / "fp16.log").read_bytes()
    assert "log:" in fail.stderr.decode()
    if HAS_DIAGNOSIS:  # the post-mortem shows the root failure under accelerate's CalledProcessError
        assert "RuntimeError: mat1 and mat2 must have the same dtype" in fail.stderr.decode()
    ok = subprocess.run(wrapper_argv([*base, "--mixed_precision", "no", child("fp16_cpu.py")], "--force",
                                     log=tmp_path / "fp32.log"), capture_output=True, env=env, timeout=180)
    assert ok.returncode == 0, ok.stdout[-2000:]
    assert b"step 2 loss=" in ok.stdout
    assert json.loads((tmp_path / "fp32.report.json").read_text())["exit"]["description"] == "exit code 0"


def test_a_log_that_cannot_be_created_ends_the_log_not_the_run(isolated_env, tmp_path):
    """--log under a folder that cannot be created: one warning, the run goes on (and is recorded)."""
    (tmp_path / "file").write_text("")
    proc = _run(["--only", "args", "--log", str(tmp_path / "file" / "x.log"), "--", sys.executable, "-c",
                 "import sys; print(1); sys.exit(3)"], isolated_env, tmp_path)
    assert proc.returncode == 3
    assert proc.stdout == "1\n"
    warnings = [ln for ln in proc.stderr.splitlines() if "running without a log" in ln]
    assert len(warnings) == 1 and f"--log {tmp_path / 'file' / 'x.log'}" in warnings[0]
    assert "Traceback" not in proc.stderr
    listing = subprocess.run([sys.executable, "-m", "lora_doctor", "history", "--json"], capture_output=True,
                             text=True, env=isolated_env, timeout=60)
    assert json.loads(listing.stdout)["runs"][0]["exit_code"] == 3
