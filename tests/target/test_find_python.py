"""Which Python is checked: real venvs (python -m venv --without-pip) in the layouts people use."""

from __future__ import annotations

import json
import os
import site
import stat
import subprocess
import sys
import venv
from pathlib import Path

from support import run_cli
from lora_doctor.launch.command import parse_command
from lora_doctor.target import find


def make_venv(path: Path) -> Path:
    """A real venv (no pip: fast); returns its python."""
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt").create(path)
    return find.interpreter_in(path)


def checkout(path: Path) -> Path:
    """A folder shaped like an sd-scripts checkout."""
    (path / "library").mkdir(parents=True)
    (path / "library" / "train_util.py").write_text("")
    (path / "train_network.py").write_text("")
    (path / "requirements.txt").write_text("accelerate==1.6.0\n")
    return path


def console_script(python: Path, name: str = "accelerate") -> Path:
    """A console script the way pip writes it: `#!<venv python>`."""
    script = python.parent / name
    script.write_text(f"#!{python}\nimport sys\nsys.exit(0)\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return script


def choose(tmp_path, command=None, env=None, sd_scripts=None, python=None):
    launch = parse_command(command) if command else None
    return find.choose(python, launch, sd_scripts, tmp_path, {"PATH": "/usr/bin:/bin", **(env or {})})


def env_json(args, env, cwd) -> dict:
    proc = run_cli(["env", "--json", "--offline", "--only", "python", *args], env=env, cwd=cwd)
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


# -- the layouts ------------------------------------------------------------------------------------

def test_kohya_ss_venv_beside_sd_scripts_with_the_command_from_the_gui_folder(tmp_path, isolated_env):
    root = tmp_path / "kohya_ss"
    checkout(root / "sd-scripts")
    (root / "kohya_gui.py").write_text("")
    python = make_venv(root / "venv")
    env = dict(isolated_env, PATH="/usr/bin:/bin")  # the venv is not activated: accelerate is not on PATH
    data = env_json(["--", "accelerate", "launch", "sd-scripts/train_network.py"], env, root)
    assert data["target"]["interpreter"] == str(python)
    assert data["target"]["chosen_by"] == "layout" and "kohya_ss" in data["target"]["why"]
    assert data["target"]["python"]["prefix"] == str(root / "venv")
    # without a command, from the GUI's folder, too
    assert env_json([], env, root)["target"]["interpreter"] == str(python)
    # and from the checkout itself
    assert env_json([], env, root / "sd-scripts")["target"]["interpreter"] == str(python)


def test_sd_scripts_own_venv_comes_before_the_gui_venv(tmp_path):
    root = tmp_path / "kohya_ss"
    sds = checkout(root / "sd-scripts")
    make_venv(root / "venv")
    own = make_venv(sds / "venv")
    got = choose(tmp_path, ["accelerate", "launch", str(sds / "train_network.py")])
    assert (got.python, got.source, got.why) == (str(own), "layout", "sd-scripts' venv")


def test_lora_scripts_venv_or_bundled_python_beside_sd_scripts(tmp_path):
    root = tmp_path / "lora-scripts"
    sds = checkout(root / "sd-scripts")
    bundled = root / "python" / "python.exe"  # the Windows package ships its own Python here
    bundled.parent.mkdir(parents=True)
    bundled.write_text("")
    got = choose(root, ["accelerate", "launch", "sd-scripts/train_network.py"])
    assert got.python == str(bundled) and "lora-scripts" in got.why
    python = make_venv(root / "venv")  # the Linux install script's venv wins
    assert choose(root, ["accelerate", "launch", "sd-scripts/train_network.py"]).python == str(python)
    assert choose(root).python == str(python)
    assert choose(tmp_path, sd_scripts=sds).python == str(python)


def test_lora_easy_training_scripts_backend_venv(tmp_path):
    root = tmp_path / "LoRA_Easy_Training_Scripts"
    sds = checkout(root / "backend" / "sd_scripts")
    python = make_venv(root / "backend" / "venv")
    got = choose(root)
    assert got.python == str(python) and got.source == "layout" and "LoRA_Easy_Training_Scripts" in got.why
    inner = make_venv(sds / "venv")  # older versions: sd_scripts/venv
    assert choose(root).python == str(inner)


def test_windows_scripts_python_exe(tmp_path):
    sds = checkout(tmp_path / "sd-scripts")
    exe = sds / "venv" / "Scripts" / "python.exe"
    exe.parent.mkdir(parents=True)
    exe.write_text("")
    got = choose(tmp_path, ["accelerate", "launch", "sd-scripts\\train_network.py".replace("\\", os.sep)])
    assert got.python == str(exe)
    assert find.resolve_python_option(str(sds / "venv"), tmp_path, {}) == str(exe)


# -- the shell and the command ----------------------------------------------------------------------

def test_the_activated_venv_is_checked(tmp_path, isolated_env):
    python = make_venv(tmp_path / "trainenv")
    env = dict(isolated_env, VIRTUAL_ENV=str(tmp_path / "trainenv"),
               PATH=str(python.parent) + os.pathsep + "/usr/bin:/bin")
    data = env_json([], env, tmp_path)
    assert data["target"]["interpreter"] == str(python) and data["target"]["chosen_by"] == "active venv"
    assert data["target"]["python"]["prefix"] == str(tmp_path / "trainenv")
    conda = choose(tmp_path, env={"CONDA_PREFIX": str(tmp_path / "trainenv")})
    assert conda.python == str(python) and conda.source == "conda env"


def test_the_activated_venv_that_is_lora_doctors_own_is_not_the_target(tmp_path, monkeypatch):
    own = tmp_path / "own"
    make_venv(own)
    monkeypatch.setattr(find, "own_root", lambda: own)
    got = choose(tmp_path, env={"VIRTUAL_ENV": str(own)})
    assert got.source == "none" and got.why.startswith("no training Python found")


def test_absolute_accelerate_path_names_its_venv(tmp_path):
    python = make_venv(tmp_path / "srv" / "venv")
    acc = console_script(python)
    got = choose(tmp_path, [str(acc), "launch", "train_network.py"],
                 env={"VIRTUAL_ENV": str(make_venv(tmp_path / "other").parent.parent)})
    assert (got.python, got.source) == (str(python), "command")  # the command's own path beats the shell


def test_accelerate_on_path_and_python_dash_m_accelerate(tmp_path):
    python = make_venv(tmp_path / "trainenv")
    console_script(python)
    got = choose(tmp_path, ["accelerate", "launch", "train_network.py"], env={"PATH": str(python.parent)})
    assert (got.python, got.source) == (str(python), "command")
    assert choose(tmp_path, env={"PATH": str(python.parent)}).source == "accelerate on PATH"
    rel = os.path.relpath(python, tmp_path)
    got = choose(tmp_path, [rel, "-m", "accelerate.commands.launch", "train_network.py"])
    assert got.python == str(tmp_path / rel) and got.source == "command"


# -- nothing found ----------------------------------------------------------------------------------

def own_venv_without_torch(tmp_path) -> Path:
    """A venv like the README's set-up makes (`pip install .`: no torch), which imports lora-doctor
    and its dependencies from this test venv through a .pth file."""
    python = make_venv(tmp_path / "doctor-venv")
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    Path(out, "borrow.pth").write_text("".join(f"import site; site.addsitedir({p!r})\n"
                                               for p in site.getsitepackages()))
    return python


def test_readme_setup_without_a_training_python_says_so_first_and_never_advises_its_own_venv(tmp_path, isolated_env):
    python = own_venv_without_torch(tmp_path)
    env = dict(isolated_env, PATH="/usr/bin:/bin")
    env.pop("VIRTUAL_ENV", None)
    env.pop("CONDA_PREFIX", None)
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run([str(python), "-m", "lora_doctor", "env", "--offline"], capture_output=True, text=True,
                          env=env, cwd=work, timeout=120)
    first = proc.stdout.splitlines()[0]
    assert first == "lora-doctor: no training Python found: point lora-doctor at it with --python PATH"
    assert "pip install" not in proc.stdout
    assert not [line for line in proc.stdout.splitlines() if "$ " in line and "doctor-venv" in line]
    # the checks that would describe lora-doctor's own packages say why they did not run
    assert "Package versions" in proc.stdout and "(skipped: no training Python found; --python PATH)" in \
        " ".join(proc.stdout.split())
    data = json.loads(subprocess.run([str(python), "-m", "lora_doctor", "env", "--offline", "--json"],
                                     capture_output=True, text=True, env=env, cwd=work, timeout=120).stdout)
    assert data["target"]["chosen_by"] == "none"
    assert not any("pip" in (f["fix_command"] or "") for c in data["checks"] for f in c["findings"])
    versions = next(c for c in data["checks"] if c["id"] == "versions.packages")
    assert versions["status"] == "skipped" and "no training Python found" in versions["summary"]
    python_check = next(c for c in data["checks"] if c["id"] == "python.interpreter")
    assert python_check["status"] == "warning" and "no training Python found" in python_check["summary"]


def test_own_python_with_torch_is_accepted_when_nothing_else_is_found(tmp_path):
    got = choose(tmp_path)
    assert find.has_torch(Path(sys.prefix))  # this test venv has the CPU torch
    assert (got.python, got.source) == (sys.executable, "own")


# -- the fix commands name the training interpreter ------------------------------------------------

def test_fix_commands_run_the_training_python_on_windows_with_the_call_operator():
    from lora_doctor.target.torch_wheels import cuda_install_command

    exe = "C:\\kohya_ss\\venv\\Scripts\\python.exe"
    assert find.shell_python(exe, "win32") == '& "C:\\kohya_ss\\venv\\Scripts\\python.exe"'
    command, _ = cuda_install_command(exe, "win32", "2.6.0+cpu")
    assert all(line.startswith(f'& "{exe}" -m pip ') for line in command.splitlines())
    assert find.shell_python("/srv/my venv/bin/python", "linux") == "'/srv/my venv/bin/python'"


def test_versions_fix_uses_the_layouts_venv(tmp_path, isolated_env):
    root = tmp_path / "kohya_ss"
    checkout(root / "sd-scripts")
    python = make_venv(root / "venv")
    proc = run_cli(["env", "--offline", "--only", "versions", "--", "accelerate", "launch",
                    "sd-scripts/train_network.py"], env=dict(isolated_env, PATH="/usr/bin:/bin"), cwd=root)
    commands = [line.strip() for line in proc.stdout.splitlines() if line.strip().startswith("$ ")]
    assert commands and all(str(python) in c for c in commands if "pip" in c), proc.stdout
    assert sys.executable not in proc.stdout
