"""GPU checks: facts of GPUs that cannot exist here (preset), and the real CPU torch of this venv."""

import json
import os
import stat
import sys
import time

import pytest

from support import run_cli
from lora_doctor.target import nvsmi
from lora_doctor.model import Severity
from lora_doctor.plugins import gpu as gpu_plugin
from lora_doctor.testing import fake_facts, gpu, make_context, run_check

CORPUS_FP16_CPU = [  # tests/data/corpus/sdscripts-runs.dev.jsonl, cause cuda.fp16_requires_gpu
    "accelerate", "launch", "--num_cpu_threads_per_process", "1", "--num_processes", "1", "--num_machines", "1",
    "--mixed_precision", "fp16", "--dynamo_backend", "no", "train_network.py",
    "--pretrained_model_name_or_path=/home/user/lora/model-diffusers", "--train_data_dir=/home/user/lora/data/lineart",
    "--output_dir=/home/user/lora/out/d4", "--resolution=64,64", "--network_module=networks.lora",
    "--train_batch_size=1", "--mixed_precision=fp16", "--seed=42"]
T4 = gpu("Tesla T4", (7, 5), 15)
RTX3090 = gpu("NVIDIA GeForce RTX 3090", (8, 6), 24)


def findings(check_id, command=None, no_smi=True, **facts):
    env = dict(os.environ, PATH="/nonexistent") if no_smi else None
    ctx = make_context(command, facts=fake_facts(**facts), env=env)
    return run_check(gpu_plugin, check_id, ctx)


def worst(fs):
    return max(fs, key=lambda f: f.severity)


def fake_nvidia_smi(tmp_path, body):
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    exe = folder / "nvidia-smi"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(folder) + os.pathsep + "/usr/bin" + os.pathsep + "/bin"  # the script needs cat/sleep


SMI_OUTPUT = """\
+-----------------------------------------------------------------------------+
| NVIDIA-SMI 535.104.05   Driver Version: 535.104.05   CUDA Version: 12.2     |
|-------------------------------+----------------------+----------------------+
| GPU  Name        Persistence-M| Bus-Id        Disp.A | Volatile Uncorr. ECC |
|===============================+======================+======================|
|   0  NVIDIA GeForce RTX 3090     Off  | 00000000:01:00.0  On |                  N/A |
| 30%   41C    P8    25W / 350W |    512MiB / 24576MiB |      3%      Default |
+-------------------------------+----------------------+----------------------+
"""


# -- preset facts ---------------------------------------------------------------------------
def test_bf16_on_turing_is_an_error_with_the_fp16_command():
    fs = findings("gpu.precision", "accelerate launch train_network.py --mixed_precision bf16 --full_bf16",
                  devices=[T4])
    f = worst(fs)
    assert f.severity == Severity.ERROR and f.cause == "cuda.bf16_unsupported_gpu"
    assert "Tesla T4 (sm_75)" in f.summary
    assert f.fix_command == "accelerate launch train_network.py --mixed_precision fp16 --full_fp16"


def test_bf16_on_ampere_is_fine():
    fs = findings("gpu.precision", "accelerate launch train_network.py --mixed_precision bf16", devices=[RTX3090])
    assert worst(fs).severity == Severity.OK


def test_multi_gpu_judges_every_device_single_gpu_only_the_first():
    cmd = "accelerate launch {} train_network.py --mixed_precision bf16"
    assert worst(findings("gpu.precision", cmd.format(""), devices=[RTX3090, T4])).severity == Severity.OK
    fs = findings("gpu.precision", cmd.format("--multi_gpu --num_processes 2"), devices=[RTX3090, T4])
    assert worst(fs).cause == "cuda.bf16_unsupported_gpu"


def test_fp16_on_gtx_1660_warns_about_nan():
    fs = findings("gpu.precision", "accelerate launch train_network.py --mixed_precision fp16",
                  devices=[gpu("NVIDIA GeForce GTX 1660 SUPER", (7, 5), 6)])
    f = worst(fs)
    assert f.severity == Severity.WARN and f.cause == "cuda.gtx16xx_half_precision_nan"
    assert f.fix_command.endswith("--mixed_precision no")


def test_fp16_without_gpu_is_an_error():
    fs = findings("gpu.precision", CORPUS_FP16_CPU, torch="2.6.0+cpu", cuda=None)
    f = worst(fs)
    assert f.severity == Severity.ERROR and f.cause == "cuda.fp16_requires_gpu"
    # no nvidia-smi: no GPU to install for; the option is changed where it was written, as it was written
    assert f.fix_command.endswith("--train_batch_size=1 --mixed_precision=no --seed=42")
    assert "--num_machines 1 --mixed_precision fp16 --dynamo_backend" in f.fix_command  # accelerate's own: kept


def test_fp16_without_gpu_but_nvidia_gpu_present_gives_the_torch_install(tmp_path):
    path = fake_nvidia_smi(tmp_path, f"cat <<'EOF'\n{SMI_OUTPUT}EOF")
    ctx = make_context(CORPUS_FP16_CPU, facts=fake_facts(torch="2.6.0+cpu", cuda=None),
                       env=dict(os.environ, PATH=path))
    f = worst(run_check(gpu_plugin, "gpu.precision", ctx))
    assert f.cause == "cuda.fp16_requires_gpu"
    assert "--index-url https://download.pytorch.org/whl/cu124" in f.fix_command


def test_accelerate_mixed_precision_alone_is_ignored_by_sd_scripts(tmp_path):
    fs = findings("gpu.precision", "accelerate launch --mixed_precision bf16 train_network.py", devices=[RTX3090])
    f = worst(fs)
    assert f.severity == Severity.WARN and "sd-scripts ignores accelerate's mixed precision" in f.summary
    assert f.fix_command.endswith("train_network.py --mixed_precision bf16")
    # the same from the accelerate config file
    cfg = tmp_path / "hf" / "accelerate" / "default_config.yaml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\nmixed_precision: fp16\n")
    ctx = make_context("accelerate launch train_network.py", facts=fake_facts(devices=[T4]),
                       env=dict(os.environ, HF_HOME=str(tmp_path / "hf"), PATH="/nonexistent"))
    f = worst(run_check(gpu_plugin, "gpu.precision", ctx))
    assert "fp16 from the accelerate config" in f.summary and f.severity == Severity.WARN


def test_cpu_build_is_an_error_with_the_cuda_install_command_for_that_python():
    fs = findings("gpu.cuda", torch="2.6.0+cpu", cuda=None, executable="/srv/sd-scripts/venv/bin/python",
                  packages={"torchvision": "0.21.0+cpu"})
    f = worst(fs)
    assert f.severity == Severity.ERROR and f.cause == "cuda.torch_cpu_build"
    assert f.fix_command.splitlines() == [
        "/srv/sd-scripts/venv/bin/python -m pip uninstall -y torch torchvision",
        "/srv/sd-scripts/venv/bin/python -m pip install torch==2.6.0 torchvision==0.21.0 "
        "--index-url https://download.pytorch.org/whl/cu124"]
    assert "nvidia-smi is not on PATH" in f.detail


def test_cpu_build_windows_path_is_quoted_for_cmd():
    fs = findings("gpu.cuda", torch="2.6.0+cpu", cuda=None, platform="win32",
                  executable=r"C:\Program Files\kohya\venv\Scripts\python.exe")
    assert worst(fs).fix_command.startswith(r'& "C:\Program Files\kohya\venv\Scripts\python.exe" -m pip')


def test_torch_missing_and_torch_raising():
    f = worst(findings("gpu.cuda", torch=None, torch_error="ModuleNotFoundError: No module named 'torch'"))
    assert f.cause == "install.requirements_missing" and "torch is not installed" in f.summary
    assert "torch==2.6.0 torchvision==0.21.0 --index-url https://download.pytorch.org/whl/cu124" in f.fix_command
    f = worst(findings("gpu.cuda", torch="2.6.0", torch_error="OSError: [WinError 126] The specified module "
                       "could not be found. Error loading \"fbgemm.dll\"", platform="win32"))
    assert f.severity == Severity.ERROR and f.cause == "os.windows_torch_dll_dependency_missing"
    assert "import torch fails" in f.summary


def test_cuda_build_but_not_available():
    fs = findings("gpu.cuda", cuda_available=False, devices=[])
    f = worst(fs)
    assert f.severity == Severity.ERROR and "cannot use CUDA" in f.summary
    assert "nvidia-smi is not on PATH" in f.detail


def test_devices_listed_with_vram_and_capability():
    fs = findings("gpu.cuda", devices=[RTX3090, T4])
    lines = [f.summary for f in fs]
    assert "GPU 0: NVIDIA GeForce RTX 3090 (24.0 GiB, compute capability 8.6), bf16" in lines
    assert "GPU 1: Tesla T4 (15.0 GiB, compute capability 7.5), no bf16" in lines
    assert worst(fs).severity == Severity.OK


def test_gpu_newer_than_the_torch_build_arch_list():
    fs = findings("gpu.cuda", devices=[gpu("NVIDIA GeForce RTX 5090", (12, 0), 32)])
    f = worst(fs)
    assert f.severity == Severity.ERROR and "sm_120" in f.summary
    assert "torch==2.8.0" in f.fix_command and f.fix_command.endswith("/cu128")


@pytest.mark.parametrize("cap,arch,ok", [((8, 6), ["sm_80"], True), ((8, 9), ["sm_86"], True),
                                         ((6, 1), ["sm_75", "sm_80"], False), ((12, 0), ["sm_90"], False),
                                         ((12, 0), ["sm_90", "compute_90"], True)])
def test_arch_list_rule(cap, arch, ok):
    assert gpu_plugin.supports_arch(cap, arch) is ok


def test_vram_estimate_warns_with_the_command_that_fits():
    fs = findings("gpu.vram", "accelerate launch sdxl_train_network.py --mixed_precision fp16 --resolution 1024",
                  devices=[gpu("NVIDIA GeForce RTX 3060", (8, 6), 12)])
    f = worst(fs)
    assert f.severity == Severity.WARN and f.cause == "cuda.oom" and "rough estimate" in f.summary
    assert "--gradient_checkpointing" in f.fix_command
    fs = findings("gpu.vram", "accelerate launch train_network.py --mixed_precision fp16 --gradient_checkpointing "
                  "--cache_latents --sdpa", devices=[gpu("NVIDIA GeForce RTX 3060", (8, 6), 12)])
    assert worst(fs).severity == Severity.OK and "rough estimate" in worst(fs).summary


def test_probe_failure_makes_gpu_a_warning_not_a_crash():
    facts = fake_facts()
    facts["probe"] = {"ok": False, "error": "the probe crashed: boom"}
    f = worst(run_check(gpu_plugin, "gpu.cuda", make_context(facts=facts)))
    assert f.severity == Severity.WARN and "could not be inspected" in f.summary


# -- nvidia-smi -----------------------------------------------------------------------------
def test_nvidia_smi_parse_and_a_hanging_one_is_cut_short(tmp_path):
    parsed = nvsmi.parse(SMI_OUTPUT)
    assert parsed == {"driver_version": "535.104.05", "cuda_version": "12.2",
                      "gpus": [{"index": 0, "name": "NVIDIA GeForce RTX 3090", "memory_mib": 24576}]}
    path = fake_nvidia_smi(tmp_path, "sleep 30")
    started = time.monotonic()
    got = nvsmi.query({"PATH": path}, timeout=0.5)
    assert time.monotonic() - started < 5
    assert got["found"] and got["timed_out"] and "did not answer within 0.5 s" in got["error"]


def test_hanging_nvidia_smi_does_not_hang_env(tmp_path, isolated_env):
    """A CPU torch plus a stuck nvidia-smi: the GPU check still answers, within the smi timeout."""
    env = dict(isolated_env, PATH=fake_nvidia_smi(tmp_path, "sleep 30") + os.pathsep + isolated_env["PATH"],
               LORA_DOCTOR_NVIDIA_SMI_TIMEOUT="1")
    started = time.monotonic()
    proc = run_cli(["env", "--json", "--only", "gpu"], env=env, timeout=60)
    assert time.monotonic() - started < 20
    check = next(c for c in json.loads(proc.stdout)["checks"] if c["id"] == "gpu.cuda")
    assert check["findings"][0]["cause"] == "cuda.torch_cpu_build"
    assert "nvidia-smi failed: nvidia-smi did not answer within 1 s" in check["findings"][0]["detail"]


# -- the real CPU torch in this venv ----------------------------------------------------------
def test_real_cpu_torch_gives_the_cpu_build_error(isolated_env):
    proc = run_cli(["env", "--only", "gpu", "python"], env=isolated_env)
    assert proc.returncode == 1
    from importlib.metadata import version

    torch = version("torch")  # the test venv's own: the probe must report the same one
    assert f"[✗] GPU: torch {torch} is a CPU-only build: training cannot use a GPU" in proc.stdout
    # torch 2.13's CUDA builds are not known here: the README's pair, and the selector for keeping 2.13
    # the interpreter as the doctor names it may be another spelling of ours (a `..` in sys.executable,
    # a symlink): compare the files, not the text
    tail = " -m pip install torch==2.6.0 torchvision==0.21.0 --index-url https://download.pytorch.org/whl/cu124"
    command = next(line.strip()[2:] for line in proc.stdout.splitlines()
                   if line.strip().startswith("$ ") and line.rstrip().endswith(tail))
    assert os.path.samefile(command[:-len(tail)], sys.executable)
    assert f"does not know torch {torch.split('+')[0]}'s CUDA builds; to keep it, see https://pytorch.org/get-started/locally/" \
        in " ".join(proc.stdout.split())


def test_cuda_install_command_invents_no_tag_for_an_unknown_torch():
    from lora_doctor.target.torch_wheels import cuda_install_command

    command, note = cuda_install_command("/v/bin/python", "linux", "2.9.1+cpu", "0.24.1+cpu")
    assert command.endswith("pip install torch==2.9.1 torchvision==0.24.1 --index-url https://download.pytorch.org/whl/cu126")
    assert note == ""
    command, note = cuda_install_command("/v/bin/python", "linux", "2.11.0+cpu", None, driver_cuda="11.8")
    assert command.endswith("pip install torch==2.6.0 torchvision==0.21.0 --index-url https://download.pytorch.org/whl/cu118")
    assert "does not know torch 2.11.0's CUDA builds" in note and "cu12" not in note


def test_real_cpu_torch_with_the_corpus_fp16_command(isolated_env, tmp_path):
    proc = run_cli(["env", "--json", "--only", "gpu", "--", *CORPUS_FP16_CPU], env=isolated_env, cwd=tmp_path)
    data = json.loads(proc.stdout)
    causes = {f["cause"] for c in data["checks"] for f in c["findings"]}
    assert {"cuda.torch_cpu_build", "cuda.fp16_requires_gpu"} <= causes
    assert data["target"]["torch"]["cuda_build"] is None and data["target"]["torch"]["imported"] is True
    assert proc.returncode == 1


def test_context_built_directly_with_a_facts_dict():
    from lora_doctor.context import Context

    ctx = Context(python="/x/python", python_source="current", facts=fake_facts(torch="2.6.0+cpu", cuda=None))
    assert worst(run_check(gpu_plugin, "gpu.cuda", ctx)).cause == "cuda.torch_cpu_build"
