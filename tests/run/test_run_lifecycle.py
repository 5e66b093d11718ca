"""`lora-doctor run` around the child's life: the training dies with the wrapper (`kill -9`), and
whatever fails after the run (the diagnosis, report.json on a full disk) never changes the exit code
nor keeps the run out of the history."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from support.run_helpers import alive, kill_quietly, wait_for_file, wrapper_argv

# the child leaves a grandchild in its group, writes both pids, then waits for ever
FAMILY = ("import os, subprocess, sys, time\n"
          "g = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'])\n"
          "open(sys.argv[1] + '.tmp', 'w').write(f'{os.getpid()} {g.pid}')\n"
          "os.replace(sys.argv[1] + '.tmp', sys.argv[1])\n"
          "print('training', flush=True)\n"
          "time.sleep(300)\n")


@pytest.mark.skipif(os.name != "posix", reason="POSIX process groups")
def test_kill_9_of_the_wrapper_ends_the_training(isolated_env, tmp_path):
    pids_file = tmp_path / "pids"
    wrapper = subprocess.Popen(wrapper_argv([sys.executable, "-c", FAMILY, str(pids_file)], "--force",
                                            log=tmp_path / "k.log"),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=isolated_env)
    pids = []
    try:
        pids = [int(p) for p in wait_for_file(pids_file).split()]
        assert all(alive(p) for p in pids)
        wrapper.kill()  # SIGKILL: no handler, no clean-up of ours runs
        wrapper.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(alive(p) for p in pids):
            time.sleep(0.1)
        assert not [p for p in pids if alive(p)], "the training outlived the wrapper (orphaned)"
    finally:
        wrapper.kill()
        kill_quietly(*pids)


def _run_patched(prelude: str, code: str, tmp_path, env, log_name="p.log"):
    """lora-doctor run in a fresh interpreter whose commands.run module is patched by `prelude`."""
    script = (f"import sys\nimport lora_doctor.commands.run as r\n{prelude}\n"
              "from lora_doctor.cli import main\nsys.exit(main(sys.argv[1:]))\n")
    argv = wrapper_argv([sys.executable, "-c", code], log=tmp_path / log_name)
    argv = [sys.executable, "-c", script, *argv[3:]]  # replace `-m lora_doctor` by the patched entry
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)


def _history(env) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "lora_doctor", "history", "--json"], capture_output=True,
                         text=True, env=env, timeout=60)
    return json.loads(out.stdout)["runs"]


def test_a_crash_while_explaining_a_failed_run_keeps_the_exit_code(isolated_env, tmp_path):
    prelude = ("def boom(*a, **k):\n    raise RuntimeError('the explainer broke')\n"
               "r._diagnose = boom\nr._write_report = boom\n")
    proc = _run_patched(prelude, "import sys; print('step'); sys.exit(7)", tmp_path, isolated_env)
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout == "step\n"
    assert "the explainer broke" in proc.stderr and "Traceback" not in proc.stderr
    runs = _history(isolated_env)
    assert runs and runs[0]["exit_code"] == 7  # recorded all the same


def test_report_on_a_full_disk_is_not_left_empty_and_the_run_is_recorded(isolated_env, tmp_path):
    """The log's disk fills up before report.json is written: no empty report, one warning, and the
    run is in the history (whose own disk is fine)."""
    prelude = ("import os, tempfile\n"
               "def full(*a, **k):\n    return os.open('/dev/full', os.O_WRONLY), k.get('dir', '.') + '/.report-x.tmp'\n"
               "tempfile.mkstemp = full\n")
    proc = _run_patched(prelude, "import sys; print('step'); sys.exit(3)", tmp_path, isolated_env, "full.log")
    assert proc.returncode == 3, proc.stderr
    assert not (tmp_path / "full.report.json").exists()
    warnings = [ln for ln in proc.stderr.splitlines() if "could not write" in ln]
    assert len(warnings) == 1 and "No space left on device" in warnings[0], proc.stderr
    runs = _history(isolated_env)
    assert runs and runs[0]["exit_code"] == 3


def test_exit_0_after_a_nan_loss_is_a_failure_for_the_history(isolated_env, tmp_path):
    code = "print('steps: 10%|#  | 1/10 [00:01<00:09, avr_loss=nan]')\nprint('saved model')\n"
    proc = subprocess.run(wrapper_argv([sys.executable, "-c", code], log=tmp_path / "nan.log"), capture_output=True,
                          text=True, env=isolated_env, timeout=120)
    assert proc.returncode == 0  # the child's exit code, as always
    assert "exited 0, but the loss went NaN" in proc.stderr
    report = json.loads((tmp_path / "nan.report.json").read_text())
    assert report["silent_failure"] == "the loss went NaN"
    runs = _history(isolated_env)
    assert runs[0]["outcome"] == "failed" and runs[0]["exit_code"] == 0


def test_the_log_and_report_hold_the_exit_cause_from_one_place(isolated_env, tmp_path):
    code = "import os, signal; print('x', flush=True); os.kill(os.getpid(), signal.SIGSEGV)"
    proc = subprocess.run(wrapper_argv([sys.executable, "-c", code], log=tmp_path / "s.log"), capture_output=True,
                          text=True, env=isolated_env, timeout=120)
    assert proc.returncode == 128 + signal.SIGSEGV
    exit_ = json.loads((tmp_path / "s.report.json").read_text())["exit"]
    assert exit_ == {"code": 139, "signal": 11, "ntstatus": None, "description": "killed by signal 11 (SIGSEGV)"}
    assert _history(isolated_env)[0]["exit_cause"] == "killed by signal 11 (SIGSEGV)"
