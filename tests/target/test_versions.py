"""versions.packages: a real sd-scripts-like folder with requirements.txt, faked and real target venvs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support import run_cli
from lora_doctor.launch.command import parse_command
from lora_doctor.context import build_context
from lora_doctor.model import Severity
from lora_doctor.plugins.versions import check_versions

REQUIREMENTS = """\
accelerate==1.6.0
transformers==4.54.1
diffusers[torch]==0.32.1
ftfy==6.3.1
einops==0.7.0
bitsandbytes
lion-pytorch==0.2.3
tensorboard
safetensors==0.4.5
huggingface-hub==0.34.3
numpy
# for kohya_ss library
-e .
"""
MATCHING = {"accelerate": "1.6.0", "transformers": "4.54.1", "diffusers": "0.32.1", "ftfy": "6.3.1",
            "einops": "0.7.0", "safetensors": "0.4.5", "huggingface_hub": "0.34.3", "numpy": "1.26.4",
            "torch": "2.6.0+cu124", "torchvision": "0.21.0+cu124", "tensorboard": "2.18.0"}


def checkout(tmp_path: Path) -> Path:
    folder = tmp_path / "sd-scripts"
    (folder / "library").mkdir(parents=True)
    (folder / "library" / "train_util.py").write_text("")
    (folder / "train_network.py").write_text("")
    (folder / "requirements.txt").write_text(REQUIREMENTS)
    return folder


def run(tmp_path, packages, *args, with_checkout=True, requires=None, script="train_network.py",
        platform="linux", python="/venv/bin/python"):
    folder = checkout(tmp_path) if with_checkout else tmp_path
    facts = {"python": {"version": "3.10.11", "platform": platform}, "packages": packages,
             "distributions": {}, "requires": requires or {}, "torch": {"cuda_build": "12.4"}, "probe": {"ok": True}}
    launch = parse_command(["accelerate", "launch", str(folder / script), *args])
    ctx = build_context(python=python, launch=launch, cwd=tmp_path, env={}, facts=facts)
    return list(check_versions(ctx))


def by_cause(findings, cause):
    return [f for f in findings if f.cause == cause]


def test_everything_pinned_is_ok(tmp_path):
    fs = run(tmp_path, dict(MATCHING, **{"bitsandbytes": "0.45.0", "lion-pytorch": "0.2.3"}))
    assert [f.severity for f in fs] == [Severity.OK]
    assert "checkout's requirements.txt" in fs[0].summary and "transformers 4.54.1" in fs[0].summary


def test_transformers_mismatch_is_an_error_with_the_pinned_install(tmp_path):
    fs = run(tmp_path, dict(MATCHING, transformers="4.44.0"))
    (f,) = by_cause(fs, "versions.transformers_incompatible")
    assert f.severity == Severity.ERROR and "transformers==4.54.1" in f.summary
    folder = tmp_path / "sd-scripts"
    assert f.fix_command == f"cd {folder}\n/venv/bin/python -m pip install -r requirements.txt"
    assert "--upgrade" not in f.fix_command


def test_transformers_5_and_old_transformers_name_their_causes(tmp_path):
    fs = run(tmp_path, dict(MATCHING, transformers="5.20.2"))
    assert by_cause(fs, "versions.transformers_incompatible")[0].severity == Severity.ERROR
    fs = run(tmp_path / "b", dict(MATCHING, transformers="4.30.2"))
    (f,) = by_cause(fs, "versions.clip_tokenizer_added_tokens_encoder")
    assert "4.30.2" in f.summary and "added_tokens_encoder" in f.detail
    assert not by_cause(fs, "versions.transformers_incompatible")  # one finding per package


def test_hub_1x_with_transformers_4(tmp_path):
    fs = run(tmp_path, dict(MATCHING, huggingface_hub="1.28.0"))
    assert by_cause(fs, "versions.huggingface_hub_incompatible")[0].severity == Severity.ERROR


def test_missing_requirements(tmp_path):
    packages = dict(MATCHING)
    del packages["diffusers"], packages["einops"]
    (f,) = by_cause(run(tmp_path, packages), "install.requirements_missing")
    assert "diffusers, einops" in f.summary


def test_without_checkout_compares_with_the_fallback_pins_and_says_so(tmp_path):
    fs = run(tmp_path, dict(MATCHING, transformers="4.44.0"), with_checkout=False)
    assert "sd-scripts v0.10.1" in fs[0].summary
    (f,) = by_cause(fs, "versions.transformers_incompatible")
    assert f.fix_command == "/venv/bin/python -m pip install transformers==4.54.1"


def test_torch_pairs(tmp_path):
    fs = run(tmp_path, dict(MATCHING, torchvision="0.20.1+cu124", xformers="0.0.28.post3"), "--xformers")
    (tv,) = by_cause(fs, "versions.torch_torchvision_mismatch")
    assert "torchvision==0.21.*" in tv.fix_command and "whl/cu124" in tv.fix_command
    (xf,) = by_cause(fs, "versions.xformers_missing")
    assert xf.severity == Severity.ERROR and "torch 2.5.1" in xf.summary
    assert "xformers==0.0.29.post2 --index-url https://download.pytorch.org/whl/cu124" in xf.fix_command
    fs = run(tmp_path / "b", dict(MATCHING, xformers="0.0.35"))  # built for torch >= 2.10; no --xformers
    assert by_cause(fs, "versions.xformers_missing")[0].severity == Severity.WARN
    fs = run(tmp_path / "c", dict(MATCHING, torch="2.11.0+cu128", torchvision="0.26.0+cu128", xformers="0.0.35"))
    assert not by_cause(fs, "versions.xformers_missing")


def test_options_that_need_packages(tmp_path):
    fs = run(tmp_path, dict(MATCHING), "--xformers", "--optimizer_type", "Lion", "--log_with", "wandb",
             "--network_module", "lycoris.kohya")
    assert by_cause(fs, "versions.xformers_missing")[0].summary == "--xformers is set but xformers is not installed"
    (opt,) = by_cause(fs, "versions.optional_optimizer_package_missing")
    assert opt.fix_command.endswith("pip install lion-pytorch==0.2.3")
    assert by_cause(fs, "versions.log_backend_missing")[0].fix_command.endswith("pip install wandb")
    assert by_cause(fs, "versions.network_module_package_missing")[0].fix_command.endswith("pip install lycoris-lora")
    fs = run(tmp_path / "b", dict(MATCHING, bitsandbytes="0.38.1"), "--optimizer_type", "PagedAdamW8bit")
    assert by_cause(fs, "versions.optimizer_package_outdated")[0].fix_command.endswith("'bitsandbytes>=0.39.0'")
    fs = run(tmp_path / "c", dict(MATCHING), "--use_8bit_adam")
    assert by_cause(fs, "versions.optional_optimizer_package_missing")


def test_windows_commands_quote_what_cmd_exe_would_read_as_a_redirection(tmp_path):
    python = r"C:\Program Files\Python310\python.exe"
    fs = run(tmp_path, dict(MATCHING, bitsandbytes="0.38.1"), "--optimizer_type", "PagedAdamW8bit",
             platform="win32", python=python)
    (f,) = by_cause(fs, "versions.optimizer_package_outdated")
    assert f.fix_command == f'& "{python}" -m pip install "bitsandbytes>=0.39.0"'  # PowerShell's call operator


def test_numpy2_with_old_opencv(tmp_path):
    fs = run(tmp_path, dict(MATCHING, numpy="2.1.0", **{"opencv-python": "4.8.0.76"}))
    assert by_cause(fs, "versions.numpy_abi_mismatch")[0].severity == Severity.ERROR


def test_declared_requirements_are_checked_like_pip_check(tmp_path):
    fs = run(tmp_path, dict(MATCHING, pillow="9.0.0"),
             requires={"diffusers": ["Pillow>=10", "regex!=2019.12.17", "pytest; extra == 'test'"]})
    (f,) = [f for f in fs if "requires Pillow" in f.summary]
    assert f.severity == Severity.WARN and "9.0.0" in f.summary


def make_venv(root: Path, versions: dict[str, str]) -> Path:
    """A real venv whose site-packages holds tiny dist-info folders (metadata only)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=60)
    python = root / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig;print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, timeout=30).stdout.strip()
    for name, version in versions.items():
        info = Path(site) / f"{name.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
                                       + ("Requires-Dist: huggingface-hub<1.0,>=0.34.0\n" if name == "transformers" else ""))
    return python


def test_real_venv_through_the_cli(tmp_path, isolated_env):
    folder = checkout(tmp_path)
    python = make_venv(tmp_path / "venv", {"transformers": "4.44.0", "huggingface-hub": "0.34.3",
                                           "accelerate": "1.6.0", "safetensors": "0.4.5"})
    proc = run_cli(["env", "--json", "--offline", "--python", str(python), "--sd-scripts", str(folder),
                    "--only", "versions"], env=isolated_env, cwd=tmp_path)
    data = json.loads(proc.stdout)
    check = next(c for c in data["checks"] if c["id"] == "versions.packages")
    causes = {f["cause"] for f in check["findings"]}
    assert "versions.transformers_incompatible" in causes and "install.requirements_missing" in causes
    assert check["status"] == "error" and proc.returncode == 1
    text = run_cli(["env", "--offline", "--python", str(python), "--sd-scripts", str(folder), "--only", "versions"],
                   env=isolated_env, cwd=tmp_path).stdout
    assert "transformers 4.44.0 is installed; this sd-scripts needs transformers==4.54.1" in text
    assert f"$ {python} -m pip install -r requirements.txt" in text


def test_old_accelerate_and_diffusers_name_their_causes(tmp_path):
    fs = run(tmp_path, dict(MATCHING, accelerate="0.25.0", diffusers="0.25.0"))
    assert by_cause(fs, "versions.accelerate_too_old")[0].severity == Severity.ERROR
    assert by_cause(fs, "versions.diffusers_incompatible")[0].severity == Severity.ERROR


def test_target_packages_asks_the_probe_without_torch_when_its_answer_is_missing():
    from importlib.metadata import version

    from lora_doctor.target import packages as target_packages

    got = target_packages.query(sys.executable)
    assert got["error"] == "" and got["dists"]["torch"] == version("torch")
    assert any(r.startswith(("filelock", "typing-extensions", "typing_extensions")) for r in got["requires"]["torch"])
    assert target_packages.query("/nonexistent/bin/python")["error"]
