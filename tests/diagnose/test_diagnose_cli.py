"""`lora-doctor diagnose` end to end: real failures from real libraries, exit codes, output."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
import threading

import pytest

from support import DATA, run_cli
from lora_doctor.diagnose.match import diagnose_file, load_signatures
from lora_doctor.host.pluginmanager import PluginHost

EVIDENCE_SIGS = DATA / "signatures" / "evidence"
BASIC_SIGS = DATA / "signatures" / "basic"

# Each case raises a real error from a real library; the traceback is written exactly as Python
# prints an uncaught exception.
GENERATOR = r'''
import sys, traceback
from pathlib import Path
out = Path(sys.argv[1])

def cuda():
    import torch
    torch.zeros(1).cuda()

def fp16():
    import torch
    from accelerate import Accelerator
    acc = Accelerator(mixed_precision="fp16")  # no GPU: the device is the CPU
    print(f"accelerator device: {acc.device}")
    text_encoder = torch.nn.Linear(8, 8).to(acc.device, dtype=torch.float16)  # sd-scripts' weight_dtype
    text_encoder(torch.randn(2, 8))

def safetensors():
    import torch
    from safetensors.torch import load_file, save_file
    path = out / "model.safetensors"
    save_file({"w": torch.zeros(64, 64)}, str(path))
    path.write_bytes(path.read_bytes()[:200])  # an interrupted download
    load_file(str(path))

def png():
    from PIL import Image
    path = out / "img.png"
    Image.effect_noise((128, 128), 64).convert("RGB").save(path)
    path.write_bytes(path.read_bytes()[:3000])
    Image.open(path).convert("RGB")

def cp932():
    # sd-scripts' caption reader (library/train_util.py), as it logs and re-raises
    library = out / "library"
    library.mkdir(exist_ok=True)
    (library / "train_util.py").write_text(CAPTION_READER, encoding="utf-8")
    sys.path.insert(0, str(out))
    from library.train_util import read_caption
    path = out / "img.txt"
    path.write_bytes("猫が座っている、白い背景".encode("cp932"))
    read_caption(str(path))

CAPTION_READER = """
import logging, sys
logging.basicConfig(stream=sys.stdout, format="%(levelname)s %(message)s")
logger = logging.getLogger(__name__)

def read_caption(cap_path):
    with open(cap_path, "rt", encoding="utf-8") as f:
        try:
            lines = f.readlines()
        except UnicodeDecodeError as e:
            logger.error(f"illegal char in file (not UTF-8) / ファイルにUTF-8以外の文字があります: {cap_path}")
            raise e
    return lines
"""

def hub401():
    from huggingface_hub import whoami
    whoami(token="hf_" + "q" * 34)

import contextlib, io
for name in sys.argv[2:]:
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            globals()[name]()
    except Exception:
        (out / f"{name}.log").write_text(printed.getvalue() + traceback.format_exc(), encoding="utf-8")
    else:
        (out / f"{name}.log").write_text("no error\n", encoding="utf-8")
'''

CASES = {
    "cuda": "cuda.torch_cpu_build",
    "fp16": "cuda.fp16_requires_gpu",
    "safetensors": "model.file_corrupt",
    "png": "dataset.image_corrupt",
    "cp932": "dataset.caption_not_utf8",
    "hub401": "auth.invalid_token",
}


class _Unauthorized(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # what the Hub answers for a bad token
        body = b'{"error": "Invalid credentials in Authorization header"}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Error-Message", "Invalid credentials in Authorization header")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def real_logs(tmp_path_factory):
    out = tmp_path_factory.mktemp("real")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unauthorized)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=f"http://127.0.0.1:{server.server_address[1]}", HF_HUB_DISABLE_TELEMETRY="1",
               HF_HOME=str(out / "hf"), CUDA_VISIBLE_DEVICES="")
    script = out / "gen.py"
    script.write_text(GENERATOR, encoding="utf-8")
    try:
        subprocess.run([sys.executable, str(script), str(out), *CASES], env=env, timeout=120, check=True,
                       capture_output=True)
    finally:
        server.shutdown()
    return out


@pytest.fixture(scope="module")
def builtin_ids():
    db, _ = load_signatures(PluginHost([], entry_points=False))
    return {s.id for s in db.signatures}


@pytest.mark.parametrize("case", sorted(CASES))
def test_real_library_errors_are_named(real_logs, builtin_ids, case, monkeypatch, tmp_path):
    """With the shipped database when it defines the cause, else with the small evidence signatures."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    log = real_logs / f"{case}.log"
    assert log.read_text("utf-8") != "no error\n", f"{case}: the library did not fail"
    cause = CASES[case]
    folders = [] if cause in builtin_ids else [str(EVIDENCE_SIGS)]
    report = diagnose_file(log, host=PluginHost(folders, entry_points=False))
    assert report.diagnoses, f"{case}: nothing matched {report.root.exception}: {report.root.message[:200]}"
    assert report.diagnoses[0].signature_id == cause
    assert report.diagnoses[0].fix
    assert "q" * 34 not in json.dumps(report.to_json())


def test_cli_names_the_cause_with_fix_and_corrected_command(isolated_env, real_logs):
    result = run_cli(["diagnose", str(real_logs / "fp16.log"), "--plugin-dir", str(EVIDENCE_SIGS), "--",
                      "accelerate", "launch", "train_network.py", "--mixed_precision=fp16", "--seed=1"],
                     env=isolated_env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "fp16 mixed precision without a CUDA GPU" in out
    assert "Fix:" in out and "Corrected command:" in out
    corrected = next(line.strip() for line in out.splitlines() if line.strip().startswith("$ accelerate launch"))
    assert "--seed=1" in corrected and "fp16" not in corrected
    assert "--mixed_precision=no" in corrected or "--mixed_precision no" in corrected


def test_cli_json(isolated_env, real_logs):
    result = run_cli(["diagnose", str(real_logs / "cuda.log"), "--json", "--plugin-dir", str(EVIDENCE_SIGS)],
                     env=isolated_env)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["diagnoses"][0]["id"] == "cuda.torch_cpu_build"
    assert set(data["diagnoses"][0]) >= {"id", "title", "confidence", "evidence", "why", "fix", "fix_command", "refs"}
    root = data["failures"][0]
    assert root["exception"] == "AssertionError" and root["message"] == "Torch not compiled with CUDA enabled"
    assert root["frames"][-1]["function"] == "_lazy_init"


UNKNOWN = """Traceback (most recent call last):
  File "/sd/train_network.py", line 12, in train
    frobnicate()
ZorkError: the grue ate the latents
"""


def test_cli_unknown_failure_says_so_and_shows_where(isolated_env, tmp_path):
    log = tmp_path / "x.log"
    log.write_text(UNKNOWN)
    result = run_cli(["diagnose", str(log), "--plugin-dir", str(BASIC_SIGS)], env=isolated_env)
    assert result.returncode == 1
    assert "No known cause matches this failure." in result.stdout
    assert "Failure: ZorkError: the grue ate the latents" in result.stdout
    assert "raised at /sd/train_network.py:12 in train" in result.stdout
    data = json.loads(run_cli(["diagnose", str(log), "--json"], env=isolated_env).stdout)
    assert data["diagnoses"] == [] and data["failures"][0]["exception"] == "ZorkError"


def test_cli_clean_log_and_stdin(isolated_env):
    result = run_cli(["diagnose", "-"], env=isolated_env,
                     input="steps: 100%|#####| 2/2 [00:03<00:00, avr_loss=1.16]\nmodel saved.\n")
    assert result.returncode == 0
    assert "No failure found in this log" in result.stdout
    result = run_cli(["diagnose", "-", "--plugin-dir", str(BASIC_SIGS)], env=isolated_env, input=UNKNOWN)
    assert result.returncode == 1


def test_cli_verbose_shows_frames(isolated_env, tmp_path):
    log = tmp_path / "x.log"
    log.write_text(UNKNOWN)
    result = run_cli(["diagnose", str(log), "-v"], env=isolated_env)
    assert "/sd/train_network.py:12 train" in result.stdout


def _binary(folder):
    path = folder / "model.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}" + bytes(4000))
    return path


@pytest.mark.parametrize("make,expect", [
    (lambda p: p / "missing.log", "no such file"),
    (lambda p: p, "is a folder"),
    (_binary, "is a binary file, not a log"),
])
def test_cli_usage_errors_are_one_line_exit_2(isolated_env, tmp_path, make, expect):
    result = run_cli(["diagnose", str(make(tmp_path))], env=isolated_env)
    assert result.returncode == 2
    assert expect in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_cli_unreadable_file(isolated_env, unprivileged):
    """As an unprivileged user: root reads everything."""
    log = unprivileged.tmp / "locked.log"
    log.write_text("x")
    log.chmod(0)
    result = unprivileged.run_cli(["diagnose", str(log)], isolated_env)
    assert result.returncode == 2 and "cannot read it" in result.stderr


GUI_LOG = """\
16:01:02-101 INFO     Start training LoRA Standard ...
16:01:02-130 INFO     Executing command: "C:\\kohya_ss\\venv\\Scripts\\accelerate.EXE" launch --dynamo_backend no --num_cpu_threads_per_process 2 "C:/kohya_ss/sd-scripts/train_network.py" --pretrained_model_name_or_path="C:/models/sd15.safetensors" --train_data_dir="D:/lora/img" --resolution="512,512" --output_dir="D:/lora/out" --network_module=networks.lora --train_batch_size="2"
Traceback (most recent call last):
  File "C:\\kohya_ss\\sd-scripts\\library\\train_util.py", line 1634, in __getitem__
    assert (
AssertionError: image too large, but cropping and bucketing are disabled / 画像サイズが大きいのでface_crop_aug_rangeかrandom_crop、またはbucketを有効にしてください: D:\\lora\\img\\10_cat\\big.png
"""


def test_a_pasted_gui_log_brings_its_own_command(tmp_path, isolated_env):
    """The kohya_ss GUI prints the command it runs: without `-- COMMAND`, that one is corrected."""
    log = tmp_path / "gui.log"
    log.write_text(GUI_LOG, encoding="utf-8")
    result = run_cli(["diagnose", str(log)], env=isolated_env)
    assert result.returncode == 0, result.stderr
    assert "the command the log printed" in result.stdout
    corrected = next(line.strip() for line in result.stdout.splitlines() if line.strip().startswith("$ accelerate"))
    assert "--enable_bucket" in corrected and "D:/lora/img" in corrected and "C:/kohya_ss/sd-scripts/train_network.py" in corrected
    data = json.loads(run_cli(["diagnose", "--json", str(log)], env=isolated_env).stdout)
    assert "--train_batch_size" in data["command_from_log"]


@pytest.mark.parametrize("line", [
    "accelerate launch my_experiment.py --lr 1",  # not an sd-scripts trainer
    "accelerate launch --num_processes 1",  # no script
])
def test_a_printed_command_that_is_not_a_trainer_is_not_used(line):
    from lora_doctor.diagnose.match import diagnose_text

    report = diagnose_text(line + "\n" + GUI_LOG.split("\n", 2)[2])
    assert report.command_from_log is None and report.diagnoses[0].fix_command == ""


@pytest.mark.parametrize("data,binary", [
    (b"\x89PNG\r\n\x1a\n" + b"IHDR" * 100, True),
    (b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8, True),
    (bytes(range(256)) * 16, True),  # noise
    ("画像サイズが大きいので\r\nAssertionError: image too large\r\n".encode("cp932") * 50, False),  # a cp932 console log
    (b"\x1b[32mINFO\x1b[0m steps: 50%|#####\x08\r\n" * 100, False),  # colours, backspaces
    (b"BMW folder 10_cars: 12 images\n", False),
])
def test_binary_files_are_told_from_logs_in_any_encoding(data, binary):
    from lora_doctor.commands.diagnose import is_binary

    assert is_binary(data[:8192]) is binary
