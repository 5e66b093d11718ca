"""accelerate.config: real config files in a temporary HF_HOME, keys read from the installed accelerate."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from support import run_cli
from lora_doctor.launch.command import parse_command
from lora_doctor.context import build_context
from lora_doctor.model import Severity
from lora_doctor.plugins.accelerate_config import check_accelerate_config

# What `accelerate config` writes for a single GPU (nested dynamo_config included).
WRITTEN = """\
compute_environment: LOCAL_MACHINE
debug: false
distributed_type: 'NO'
downcast_bf16: 'no'
dynamo_config:
  dynamo_backend: INDUCTOR
  dynamo_mode: default
enable_cpu_affinity: false
gpu_ids: all
machine_rank: 0
main_training_function: main
mixed_precision: fp16
num_machines: 1
num_processes: 1
rdzv_backend: static
same_network: true
tpu_env: []
tpu_use_cluster: false
tpu_use_sudo: false
use_cpu: false  # comment
"""
MULTI = WRITTEN.replace("distributed_type: 'NO'", "distributed_type: MULTI_GPU").replace(
    "num_processes: 1", "num_processes: 2")


def gpus(n):
    return [{"index": i, "name": "NVIDIA GeForce RTX 3090", "capability": [8, 6]} for i in range(n)]


def run(tmp_path, config: str | None, *launcher, n_gpus=1, platform="linux", script_args=(), launcher_name="accelerate"):
    hf_home = tmp_path / "hf"
    if config is not None:
        (hf_home / "accelerate").mkdir(parents=True, exist_ok=True)
        (hf_home / "accelerate" / "default_config.yaml").write_text(config)
    facts = {"python": {"platform": platform}, "packages": {"accelerate": "1.15.0"}, "probe": {"ok": True},
             "torch": {"imported": True, "cuda_available": n_gpus > 0, "devices": gpus(n_gpus)}}
    head = ["accelerate", "launch", *launcher] if launcher_name == "accelerate" else ["python"]
    launch = parse_command([*head, "train_network.py", *script_args])
    ctx = build_context(python=sys.executable, launch=launch, cwd=tmp_path,
                        env={"HOME": str(tmp_path), "HF_HOME": str(hf_home)}, facts=facts)
    return list(check_accelerate_config(ctx))


def worst(fs):
    return max(fs, key=lambda f: f.severity)


def test_config_is_read_with_pyyaml_like_accelerate(tmp_path):
    from lora_doctor.plugins.accelerate_config import load_config

    assert load_config(Path("default_config.yaml"), WRITTEN) == yaml.safe_load(WRITTEN)
    assert load_config(Path("c.json"), json.dumps({"distributed_type": "NO"})) == {"distributed_type": "NO"}
    # YAML that only PyYAML reads right (an anchor, a block scalar), as accelerate reads it
    config = WRITTEN + "fsdp_config: &f\n  fsdp_sharding_strategy: 1\nother: *f\ndescription: |\n  two\n  lines\n"
    assert load_config(Path("x.yaml"), config)["other"] == {"fsdp_sharding_strategy": 1}
    assert not (Path(__file__).parents[2] / "lora_doctor" / "mini_yaml.py").exists()


def test_unparsable_config_names_the_line():
    from lora_doctor.plugins.accelerate_config import load_config

    try:
        load_config(Path("x.yaml"), "distributed_type: [MULTI_GPU\n")
    except ValueError as exc:
        assert "line 1" in str(exc) or "line 2" in str(exc)
    else:
        raise AssertionError("no error")


def test_single_gpu_config_is_ok_and_says_mixed_precision_is_ignored(tmp_path):
    fs = run(tmp_path, WRITTEN)
    warn = [f for f in fs if f.severity == Severity.WARN]
    assert len(warn) == 1 and "sd-scripts ignores it" in warn[0].summary and "--mixed_precision fp16" in warn[0].fix
    fs = run(tmp_path, WRITTEN, script_args=("--mixed_precision", "fp16"))
    assert [f.severity for f in fs] == [Severity.OK] and "'NO'" not in fs[0].summary and "NO, 1 process" in fs[0].summary


def test_no_config(tmp_path):
    (f,) = run(tmp_path, None)
    # the training environment's own accelerate, by its path: the venv need not be activated
    accelerate = Path(sys.executable).parent / "accelerate"
    assert f.severity == Severity.INFO and f.fix_command == f"{accelerate} config default"
    (f,) = run(tmp_path, None, n_gpus=2)
    assert f.severity == Severity.WARN and "one training process per GPU" in f.summary
    (f,) = run(tmp_path, None, "--num_processes", "1", n_gpus=2)
    assert f.severity == Severity.INFO


def test_explicit_config_file_that_does_not_exist(tmp_path):
    (f,) = run(tmp_path, WRITTEN, "--config_file", "configs/mine.yaml")
    assert f.severity == Severity.ERROR and str(tmp_path / "configs" / "mine.yaml") in f.summary


def test_explicit_config_file_is_the_one_read(tmp_path):
    (tmp_path / "one.yaml").write_text(MULTI)
    fs = run(tmp_path, WRITTEN, "--config_file", "one.yaml")
    assert worst(fs).severity == Severity.ERROR and "2 processes" in worst(fs).summary


def test_multi_gpu_config_on_one_gpu(tmp_path):
    f = worst(run(tmp_path, MULTI))
    assert f.severity == Severity.ERROR and "1 GPU(s) are visible" in f.summary
    assert "distributed_type: 'NO'" in f.fix
    # accelerate launch --num_processes 1 overrides the config's process count, but MULTI_GPU stays
    f = worst(run(tmp_path, MULTI, "--num_processes", "1"))
    assert f.severity == Severity.ERROR and "MULTI_GPU" in f.summary
    assert all(f.severity < Severity.ERROR for f in run(tmp_path, MULTI, n_gpus=2))


def test_multi_gpu_on_windows(tmp_path):
    f = worst(run(tmp_path, MULTI, n_gpus=2, platform="win32"))
    assert f.cause == "distributed.windows_multigpu_nccl"


def test_multi_node_config_on_one_machine(tmp_path):
    config = WRITTEN.replace("num_machines: 1", "num_machines: 2") + "main_process_ip: 10.0.0.1\nmain_process_port: 29500\n"
    f = worst(run(tmp_path, config))
    assert f.severity == Severity.ERROR and "multi-node" in f.summary and "10.0.0.1:29500" in f.detail


def test_keys_the_installed_accelerate_does_not_know(tmp_path):
    f = worst(run(tmp_path, WRITTEN + "ipex_config:\n  ipex: false\nfuture_key: 1\n"))
    assert f.cause == "versions.accelerate_config_incompatible"
    assert "future_key" in f.summary and "ipex_config" in f.summary


def test_missing_distributed_type_and_bad_yaml(tmp_path):
    f = worst(run(tmp_path, WRITTEN.replace("distributed_type: 'NO'\n", "")))
    assert f.severity == Severity.ERROR and "distributed_type" in f.summary
    f = worst(run(tmp_path, "compute_environment: [unclosed\n  - x: y\n"))
    assert f.severity == Severity.ERROR and "not valid" in f.summary


def test_gpu_ids_beyond_the_visible_gpus(tmp_path):
    f = worst(run(tmp_path, WRITTEN.replace("gpu_ids: all", "gpu_ids: '1'")))
    assert f.severity == Severity.ERROR and "gpu_ids 1" in f.summary


def test_python_launcher_does_not_use_the_config(tmp_path):
    (f,) = run(tmp_path, MULTI, launcher_name="python")
    assert f.severity == Severity.OK and "not used" in f.summary


def test_cli_with_the_real_probe(tmp_path, isolated_env):
    config = Path(isolated_env["HF_HOME"]) / "accelerate" / "default_config.yaml"
    config.parent.mkdir(parents=True)
    config.write_text(MULTI)
    proc = run_cli(["env", "--json", "--offline", "--only", "accelerate", "--", "accelerate", "launch",
                    "train_network.py"], env=isolated_env, cwd=tmp_path)
    check = next(c for c in json.loads(proc.stdout)["checks"] if c["id"] == "accelerate.config")
    assert check["status"] == "error"  # this machine's torch is a CPU build: no GPU for 2 processes
    assert any("2 processes" in f["summary"] for f in check["findings"])
