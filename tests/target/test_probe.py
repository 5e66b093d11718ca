"""The target probe: real interpreters, fake `torch` packages that raise, hang or kill the process."""

import json
import stat
import sys
import time
from importlib.metadata import version

from support import run_cli
from lora_doctor.target.probe import run_probe


def wrapper(tmp_path, name, torch_init=None, script=None):
    """An executable standing in for a target `python`: this venv's python with a fake torch first
    on its path (PYTHONPATH), or a shell script of its own."""
    folder = tmp_path / name
    folder.mkdir()
    if torch_init is not None:
        (folder / "torch").mkdir()
        (folder / "torch" / "__init__.py").write_text(torch_init)
        script = f'PYTHONPATH="{folder}" exec "{sys.executable}" "$@"'
    exe = folder / "python"
    exe.write_text("#!/bin/sh\n" + script + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


def test_real_cpu_torch_facts():
    facts = run_probe(sys.executable, timeout=60)
    assert facts["probe"]["ok"] is True
    torch = facts["torch"]
    assert torch["imported"] is True and torch["error"] is None
    assert torch["version"] == version("torch") == facts["packages"]["torch"]
    assert torch["cuda_build"] is None and torch["cuda_available"] is False and torch["devices"] == []
    assert facts["python"]["executable"] and facts["python"]["bits"] == 64
    assert facts["packages"]["numpy"] == version("numpy") and facts["packages"]["xformers"] is None
    # every distribution, in the shape lora_doctor.target.packages answers (one subprocess for both)
    assert facts["distributions"]["torch"] == version("torch")
    assert facts["distributions"]["huggingface-hub"] == version("huggingface_hub")
    assert isinstance(facts["requires"]["torch"], list) and facts["requires"]["torch"]


def test_torch_that_raises_on_import(tmp_path):
    py = wrapper(tmp_path, "raises", "raise OSError('libcudart.so.12: cannot open shared object file')\n")
    facts = run_probe(py, timeout=30)
    assert facts["probe"]["ok"] is True  # the interpreter's own facts still came back
    assert facts["python"]["version"]
    assert facts["torch"]["imported"] is False
    assert facts["torch"]["error"] == "OSError: libcudart.so.12: cannot open shared object file"


def test_torch_import_that_hangs_is_cut_at_the_timeout_keeping_the_first_half(tmp_path):
    py = wrapper(tmp_path, "hangs", "import time\ntime.sleep(120)\n")
    started = time.monotonic()
    facts = run_probe(py, timeout=2)
    assert time.monotonic() - started < 6
    assert facts["probe"]["ok"] is True and facts["probe"]["timed_out"] is True
    assert facts["python"]["version"] and "numpy" in facts["packages"]
    assert facts["torch"] == {"imported": False, "timed_out": True,
                              "error": "import torch did not finish within 2 s"}


def test_torch_import_that_kills_the_interpreter(tmp_path):
    py = wrapper(tmp_path, "segv", "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\n")
    facts = run_probe(py, timeout=30)
    assert facts["probe"]["ok"] is True
    assert facts["torch"]["crashed"] is True
    assert "import torch crashed the interpreter (killed by signal 11 (SIGSEGV))" in facts["torch"]["error"]


def test_probe_that_crashes_prints_garbage_or_is_no_python(tmp_path):
    crash = run_probe(wrapper(tmp_path, "crash", script="echo 'Fatal Python error: init_fs_encoding' >&2; exit 1"), 10)
    assert crash["probe"] == {"ok": False, "error": "the probe crashed: Fatal Python error: init_fs_encoding",
                              "timed_out": False, "seconds": crash["probe"]["seconds"], "exit_code": None}
    garbage = run_probe(wrapper(tmp_path, "garbage", script="echo '@@LORA_DOCTOR_PROBE@@{not json'"), 10)
    assert garbage["probe"]["ok"] is False and garbage["probe"]["error"].startswith("the probe printed garbage")
    silent = run_probe(wrapper(tmp_path, "silent", script="exit 0"), 10)
    assert "printed nothing (is this a Python interpreter?)" in silent["probe"]["error"]
    missing = run_probe(str(tmp_path / "nope" / "python"), 10)
    assert missing["probe"]["error"].startswith(f"cannot run {tmp_path / 'nope' / 'python'}: ")


def test_env_with_a_hanging_torch_answers_in_bounded_time(tmp_path, isolated_env):
    py = wrapper(tmp_path, "hangs", "import time\ntime.sleep(120)\n")
    started = time.monotonic()
    proc = run_cli(["env", "--json", "--python", py, "--probe-timeout", "3", "--only", "python", "gpu"],
                   env=isolated_env, timeout=60)
    assert time.monotonic() - started < 20
    data = json.loads(proc.stdout)
    by_id = {c["id"]: c for c in data["checks"]}
    assert by_id["python.interpreter"]["status"] == "ok"  # the interpreter itself answered
    gpu = by_id["gpu.cuda"]
    assert gpu["status"] == "error"
    assert gpu["findings"][0]["summary"] == f"import torch hangs in {py}: import torch did not finish within 3 s"
    assert proc.returncode == 1


def test_env_with_a_broken_interpreter_is_one_clear_finding(tmp_path, isolated_env):
    py = wrapper(tmp_path, "crash", script="echo 'error while loading shared libraries: libpython3.10.so' >&2; exit 127")
    proc = run_cli(["env", "--python", py, "--only", "python", "gpu"], env=isolated_env)
    assert proc.returncode == 1
    assert (f"[✗] Python: cannot inspect {py}: the probe crashed: error while loading shared libraries: "
            "libpython3.10.so") in " ".join(proc.stdout.split())  # wrapped at 100 columns in a pipe
    assert "[!] GPU: GPU not checked: the target Python could not be inspected" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
