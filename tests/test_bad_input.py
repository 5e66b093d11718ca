"""Bad input to the real CLI: every mistake a user can make is one clear line (naming the file or the
option and what to do), the documented exit code, no traceback and no hang."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import run_cli
from support.dataset_builders import lineart_folder

PYTHON2 = Path.home() / ".pyenv" / "versions" / "2.7.18" / "bin" / "python"


@pytest.fixture
def cli(isolated_env, tmp_path):
    """Run the CLI in tmp_path with the isolated environment (plus `env=` overrides)."""
    def run(*args, env=None, timeout=60):
        return run_cli(list(args), env={**isolated_env, **(env or {})}, cwd=tmp_path, timeout=timeout)
    return run


def noise_jpeg() -> bytes:
    """A photo-like JPEG: high-entropy bytes with few NULs."""
    import io
    import random

    from PIL import Image

    rng = random.Random(7)
    im = Image.frombytes("RGB", (128, 128), bytes(rng.randrange(256) for _ in range(128 * 128 * 3)))
    out = io.BytesIO()
    im.save(out, "JPEG", quality=95)
    return out.getvalue()


def usage_error(proc, *needles, code=2):
    """One line on stderr holding every needle, nothing on stdout, the exit code."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert proc.stdout == ""


def no_crash(proc):
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    assert "Error" not in proc.stderr.replace("error:", ""), proc.stderr


@pytest.fixture
def files(tmp_path):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("hello\n")
    (tmp_path / "empty.log").write_bytes(b"")
    (tmp_path / "binary.bin").write_bytes(bytes(8192))
    (tmp_path / "picture.jpg").write_bytes(noise_jpeg())
    return tmp_path


# -- the first contact -----------------------------------------------------------------------------

def test_no_arguments_prints_a_short_overview(cli):
    proc = cli()
    assert proc.returncode == 2 and proc.stderr == ""
    assert len(proc.stdout.splitlines()) <= 15
    for line in ("lora-doctor env ", "lora-doctor run -- accelerate launch", "lora-doctor diagnose train.log",
                 "lora-doctor env -h"):
        assert line in proc.stdout
    assert cli("help").stdout == proc.stdout
    assert "examples:\n  lora-doctor history -n 5" in cli("help", "history").stdout


@pytest.mark.parametrize("args, needles", [
    (["evn"], ["unknown command 'evn': did you mean 'env'?"]),
    (["--foo"], ["lora-doctor: error: unrecognized arguments: --foo"]),
    (["--offline", "evn"], ["unknown command 'evn'"]),
    (["accelerate", "launch", "train_network.py"], ["lora-doctor run -- accelerate"]),
    (["env", "accelerate", "launch", "train_network.py", "--lr=1"],
     ["put '--' before the training command: lora-doctor env -- accelerate launch"]),
    (["env", "--pluginn-dir", "x"], ["unrecognized arguments: --pluginn-dir x; did you mean --plugin-dir?"]),
    (["env", "--only", "gpux"], ["--only gpux: no check has that id, family or title; did you mean gpu?"]),
    (["env", "--only", "nosuch"], ["--only nosuch", "the families are: ", "gpu", "python"]),
    (["env", "--"], ["lora-doctor env: error: no command given after '--'"]),
    (["env", "--", ""], ["lora-doctor env: error: no command given after '--'"]),
    (["run", "--"], ["give the training command after '--'"]),
    (["run"], ["give the training command after '--'"]),
    (["plugins", "--", "x"], ["it does not take a command after '--'"]),
    (["dataset", "--resolution", "512", "--train_batch_size", "two"],
     ["argument --train_batch_size: invalid int value: 'two'", "(see `lora-doctor dataset -h`)"]),
    (["dataset", "train", "--enable_buckets"], ["unrecognized arguments: --enable_buckets; did you mean --enable_bucket?"]),
    (["dataset", "train", "--learning_rate=1e-4"],
     ["--learning_rate is not a dataset option; to check a whole training command use lora-doctor env --only "
      "dataset -- accelerate launch"]),
    (["dataset", "a", "--train_data_dir", "b"], ["two dataset folders: a and --train_data_dir b; give one"]),
    (["history", "show", "99"], ["no run #99 in the history"]),
    (["history", "show", "abc"], ["RUN must be a run id", "'abc'"]),
    (["history", "prune", "--older-than", "soon"], ["'soon' is not an age; use e.g. 90d"]),
    (["history", "prune"], ["the following arguments are required: --older-than"]),
    (["diff", "1", "2"], ["the history is empty"]),
    (["errors", "show", "no.such"], ["no signature with id 'no.such'"]),
])
def test_usage_mistakes(cli, args, needles):
    usage_error(cli(*args), *needles)


def test_options_before_the_command_name(cli):
    proc = cli("--json", "plugins")
    assert proc.returncode == 0 and proc.stdout.startswith("{"), proc.stderr


def test_our_dashed_options_take_sd_scripts_underscores_and_back(cli, tmp_path):
    (tmp_path / "mine").mkdir()
    proc = cli("plugins", "--json", "--plugin_dir", "mine")
    assert proc.returncode == 0 and '"mine",' in proc.stdout, proc.stderr
    lineart_folder(tmp_path / "train" / "1_x", n=1)
    proc = cli("dataset", "train", "--resolution=64", "--enable-bucket", "--min-bucket-reso=64", "--caption-extension=.txt")
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- files and folders -----------------------------------------------------------------------------

@pytest.mark.parametrize("args, needles", [
    (["diagnose", "missing.log"], ["missing.log: no such file"]),
    (["diagnose", "folder"], ["folder is a folder"]),
    (["diagnose", "binary.bin"], ["binary.bin is a binary file"]),
    (["dataset", "missing"], ["missing: no such folder (give the folder that holds the <repeats>_<name>"]),
    (["dataset", "file.txt"], ["file.txt is a file: give the folder"]),
    (["dataset", "--dataset_config", "missing.toml"], ["--dataset_config missing.toml: no such file"]),
    (["dataset", "--dataset_config", "folder"], ["--dataset_config folder is a folder"]),
    (["env", "--plugin-dir", "missing"], ["argument --plugin-dir: no such folder: missing"]),
    (["errors", "list", "--plugin-dir", "file.txt"], ["argument --plugin-dir: file.txt is a file"]),
    (["env", "--sd-scripts", "file.txt"], ["argument --sd-scripts: no such folder: file.txt"]),
    (["env", "--python", "missing/python"], ["argument --python: no such interpreter: missing/python"]),
    (["env", "--python", "folder"], ["argument --python: no such interpreter: folder"]),
    (["run", "--force", "--python", "file.txt", "--", "true"], ["file.txt is not a program (not executable)"]),
    (["errors", "test", "missing.toml"], ["missing.toml: no such file or folder"]),
])
def test_wrong_paths(cli, files, args, needles):
    usage_error(cli(*args), *needles)


def test_diagnose_an_image(cli, files):
    usage_error(cli("diagnose", "picture.jpg"), "picture.jpg is a binary file")


def test_a_dataset_config_given_as_the_folder_names_the_right_option(cli, tmp_path):
    (tmp_path / "dataset.toml").write_text("[general]\n")
    usage_error(cli("dataset", "dataset.toml"),
                "dataset.toml is a dataset config file: lora-doctor dataset --dataset_config dataset.toml")


def test_empty_and_huge_logs(cli, files):
    empty = cli("diagnose", "empty.log")
    assert empty.returncode == 0 and "No failure found" in empty.stdout
    with open(files / "huge.log", "wb") as fh:
        line = b"steps:  12%|#2        | 120/1000 [01:00<07:20,  2.00it/s, avr_loss=0.0912]\r" * 40 + b"\n"
        while fh.tell() < 8_000_000:
            fh.write(line)
    started = time.monotonic()
    proc = cli("diagnose", "huge.log")
    no_crash(proc)
    assert proc.returncode == 0 and time.monotonic() - started < 30


@pytest.mark.parametrize("name", ["データ セット", os.fsdecode(b"bad\xffname")])
def test_paths_with_spaces_japanese_and_bytes_that_are_not_utf8(cli, tmp_path, name):
    if not os.fsencode(name).decode("utf-8", "ignore") and sys.platform == "darwin":
        pytest.skip("macOS file names are always UTF-8")
    lineart_folder(tmp_path / name / "1_x", n=2)
    proc = cli("dataset", name, "--resolution=64", "--caption_extension=.txt")
    no_crash(proc)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    shown = name if "データ" in name else "bad\\xffname"
    assert f"lora-doctor dataset: {shown}\n" in proc.stdout
    log = tmp_path / name / "train.log"
    log.write_text("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
                   "ValueError: nope\n")
    diag = cli("diagnose", str(log))
    no_crash(diag)
    assert diag.returncode in (0, 1) and "ValueError" in diag.stdout


def test_unreadable_log_and_dataset(unprivileged, isolated_env):
    """As an unprivileged user: root reads every file."""
    log = unprivileged.tmp / "secret.log"
    log.write_text("x\n")
    log.chmod(0)
    usage_error(unprivileged.run_cli(["diagnose", str(log)], isolated_env), "secret.log: cannot read it")


# -- the interpreter behind --python ---------------------------------------------------------------

def fake_program(tmp_path, name, body):
    exe = tmp_path / name
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(0o755)
    return str(exe)


@pytest.mark.skipif(os.name == "nt", reason="POSIX shell scripts stand in for interpreters")
def test_python_that_is_not_python_or_hangs(cli, tmp_path):
    silent = fake_program(tmp_path, "notpython", "exit 0")
    proc = cli("env", "--offline", "--only", "python", "--python", silent)
    assert proc.returncode == 1 and "is this a Python interpreter?" in proc.stdout
    hangs = fake_program(tmp_path, "hangs", "sleep 60")
    started = time.monotonic()
    proc = cli("env", "--offline", "--only", "python", "--python", hangs, "--probe-timeout", "2")
    assert time.monotonic() - started < 15
    assert proc.returncode == 1 and f"{hangs} did not answer within 2 s" in proc.stdout
    no_crash(proc)


@pytest.mark.skipif(os.name == "nt", reason="venvs link their python on POSIX")
def test_python_of_a_venv_whose_base_python_is_gone(cli, tmp_path):
    (tmp_path / "venv" / "bin").mkdir(parents=True)
    (tmp_path / "venv" / "bin" / "python").symlink_to("/opt/python3.9-removed/bin/python3.9")
    usage_error(cli("env", "--python", "venv"), "venv/bin/python links to /opt/python3.9-removed/bin/python3.9, "
                "which no longer exists", "recreate the venv")


@pytest.mark.skipif(not PYTHON2.exists(), reason="needs a real Python 2.7 (pyenv)")
def test_python_2(cli):
    proc = cli("env", "--offline", "--only", "python", "--python", str(PYTHON2))
    assert proc.returncode == 1
    assert "✗] Python: Python 2.7.18 is too old for sd-scripts (needs 3.10)" in proc.stdout


# -- the training command's --config_file ----------------------------------------------------------

def test_config_file_with_a_windows_path_in_double_quotes(cli, tmp_path):
    (tmp_path / "train_network.py").write_text("")
    (tmp_path / "my_lora.toml").write_text('[paths]\ntrain_data_dir = "C:\\Users\\me\\train"\n')
    proc = cli("env", "--offline", "--only", "args", "--", "accelerate", "launch", "train_network.py",
               "--network_module=networks.lora", "--config_file=my_lora.toml")
    assert proc.returncode == 1
    out = " ".join(proc.stdout.split())  # `env` wraps prose at 100 columns in a pipe
    assert (f"✗ --config_file {tmp_path / 'my_lora.toml'}, line 2: a Windows path in double quotes, where "
            "backslashes start escape sequences") in out
    assert "Fix: Write the path in single quotes (train_data_dir = 'C:\\Users\\me\\train')" in out


# -- the history database --------------------------------------------------------------------------

def test_corrupt_history_is_moved_aside(cli, tmp_path):
    home = tmp_path / "home-corrupt"
    home.mkdir()
    (home / "history.sqlite3").write_bytes(b"not a database" * 500)
    proc = cli("history", env={"LORA_DOCTOR_HOME": str(home)})
    assert proc.returncode == 0 and "No runs recorded yet" in proc.stdout
    assert "is unreadable (file is not a database); moved it to history.sqlite3.corrupt-" in proc.stderr
    assert [p.name.startswith("history.sqlite3.corrupt-") for p in home.iterdir()].count(True) == 1


def test_history_home_that_is_a_file(cli, files):
    proc = cli("history", env={"LORA_DOCTOR_HOME": str(files / "file.txt")})
    usage_error(proc, "file.txt is a file (set LORA_DOCTOR_HOME to a folder)", code=1)


# -- the console -----------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["ascii", "cp1252"])
def test_consoles_that_cannot_print_the_marks(cli, tmp_path, encoding):
    env = {"PYTHONIOENCODING": encoding}
    proc = cli("env", "--offline", "--only", "python", env=env)
    assert proc.returncode == 0 and "[v] Python: Python 3." in proc.stdout and "v No issues found." in proc.stdout
    (tmp_path / "データ").mkdir()
    data = json.loads(cli("dataset", "データ", "--json", env=env).stdout)  # exact data, as \u escapes
    assert data["dataset"] == "データ"
    proc = cli("run", "--check-only", "--json", "--offline", "--only", "python", "--",
               "accelerate", "launch", "データ/train_network.py", env=env)
    assert json.loads(proc.stdout)["command"]["script"] == "データ/train_network.py"
    for args in (["plugins"], ["errors", "list"], ["history"], ["--help"], []):
        no_crash(cli(*args, env=env))
    lineart_folder(tmp_path / "trainé" / "1_x", n=1)
    proc = cli("dataset", "trainé", "--resolution=64", "--caption_extension=.txt", env=env)
    no_crash(proc)
    assert proc.returncode == 0


@pytest.mark.parametrize("args", [["plugins"], ["errors", "list"], ["env", "--offline", "--only", "python"],
                                  ["--help"]])
def test_stdout_closed_early(isolated_env, args):
    """`lora-doctor … | head -1`: the reader goes away; no BrokenPipeError, no traceback."""
    proc = subprocess.Popen([sys.executable, "-m", "lora_doctor", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=isolated_env)
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert err == b"" and proc.returncode in (0, 1)
