"""Never print or store a secret in full.

A token (`hf_` + 34 letters) and secret option values are planted everywhere a training run puts
them: the command (`--wandb_api_key V`, `--wandb-api-key V`, `--apikey=V`, `--huggingface_token=V`,
a token inside the model URL), the child's output (`WANDB_API_KEY=V`, a token after an ANSI code,
URL-encoded ones, one in a blank-free line far longer than 64 KiB, an exception message). Then every
file lora-doctor wrote (the log, report.json, the history database with its compressed blobs) and
every stream it printed (run's stderr, `history`, `history show`, `diff`, `diagnose`, their --json)
is searched for any 12 characters of any secret, and every JSON it wrote must parse.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from lora_doctor.redact import is_secret_option, redact_argv, redact_bytes, redact_obj, redact_text
from support.run_helpers import TRUE

TOKEN = "hf_" + "QwErTyUiOpAsDfGhJkLzXcVbNmQwErTyUi"  # hf_ + 34 letters, the shape of a real token
WANDB = "9f3c1e7a5b2d4f608a1c3e5b7d9f0a2c4e6b8d0f"  # a wandb key: 40 hex digits
DASH, APIKEY, HFOPT, ENV = "dashsecretZq81Lm", "apikeysecretKp27Xw", "hfoptsecretRt64Vn", "envsecretYu95Bc"
GUI_WANDB, GUI_HF, URL_PASSWORD = "guiwandbsecretHj38", "guihfsecretNm47", "urlpasswordQa52Ws"
SECRETS = [TOKEN[3:], WANDB, DASH, APIKEY, HFOPT, ENV, GUI_WANDB, GUI_HF, URL_PASSWORD]

CHILD = f"""
import os, sys
sys.stderr = sys.stdout  # every secret goes through stdout: our stderr holds lora-doctor's own lines only
print("loading model")
print("WANDB_API_KEY={ENV}")
print("\\x1b[1m{TOKEN}\\x1b[0m logged in")
print("payload %22{TOKEN}%22 sent")
os.write(1, ("xxxxxxxxxx{TOKEN}" * 20000).encode() + b"\\n")  # 940 kB, not one blank: the log cuts it
raise RuntimeError("401 Client Error: Unauthorized for url: https://huggingface.co/api/models/x?token%3D{TOKEN}")
"""

GUI_LOG = f"""17:01:02-123456 INFO     Executing command: /venv/bin/accelerate launch --num_cpu_threads_per_process=2 /sd/train_network.py --pretrained_model_name_or_path=https://u:{URL_PASSWORD}@example.com/m.safetensors --train_data_dir=/data/img --output_dir=/data/out --resolution=512 --train_batch_size=8 --wandb_api_key={GUI_WANDB} --huggingface_token={GUI_HF}
requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: https://huggingface.co/api/whoami?token%3D{TOKEN}
Traceback (most recent call last):
  File "/sd/train_network.py", line 800, in train
    noise_pred = self.call_unet(args, accelerator, unet, noisy_latents, timesteps, text_encoder_conds)
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 7.79 GiB of which 1.94 MiB is free. %22{TOKEN}%22
"""


def leaks(data: bytes | str, where: str) -> list[str]:
    """Each secret of which any 12 characters in a row appear in data."""
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    found = []
    for secret in SECRETS:
        if any(secret[i:i + 12] in text for i in range(len(secret) - 11)):
            found.append(f"{secret} in {where}")
    return found


def database_bytes(home: Path) -> list[tuple[str, bytes]]:
    """Every file of the history folder, and every blob in it decompressed (facts, dataset listings)."""
    out = [(str(p), p.read_bytes()) for p in home.rglob("*") if p.is_file()]
    db = home / "history.sqlite3"
    if db.exists():
        conn = sqlite3.connect(db)
        for key, data in conn.execute("SELECT hash, data FROM blobs"):
            try:
                out.append((f"blob {key}", zlib.decompress(data)))
            except zlib.error:
                out.append((f"blob {key}", bytes(data)))
        for row in conn.execute("SELECT * FROM runs"):
            out.append(("runs row", repr(row).encode()))
        conn.close()
    return out


def cli(args, env, **kw):
    return subprocess.run([sys.executable, "-m", "lora_doctor", *args], capture_output=True, env=env, timeout=120, **kw)


def test_no_secret_reaches_any_file_or_stream(isolated_env, tmp_path, monkeypatch):
    home = tmp_path / "ldhome"
    env = dict(isolated_env, LORA_DOCTOR_HOME=str(home))
    (tmp_path / "child.py").write_text(CHILD, encoding="utf-8")
    log = tmp_path / "run" / "train.log"
    command = [sys.executable, "child.py", f"--pretrained_model_name_or_path=https://u:{TOKEN}@huggingface.co/m",
               "--wandb_api_key", WANDB, "--wandb-api-key", DASH, f"--apikey={APIKEY}",
               f"--huggingface_token={HFOPT}", "--output_dir=out"]
    run = cli(["run", "--offline", "--python", TRUE, "--only", "args", "--log", str(log), "--", *command], env,
              cwd=tmp_path)
    assert run.returncode == 1, run.stderr.decode()
    assert TOKEN.encode() in run.stdout  # the terminal gets the child's bytes untouched
    problems = leaks(run.stderr, "run's stderr")
    text = log.read_bytes()
    assert b"loading model" in text and text.count(b"\n") >= 6
    problems += leaks(text, "the log")
    report_text = log.with_suffix(".report.json").read_text(encoding="utf-8")
    report = json.loads(report_text)  # valid JSON
    problems += leaks(report_text, "report.json")
    assert report["exit"]["code"] == 1
    assert "--wandb_api_key" in report["command"] and "[REDACTED]" in report["command"]
    for name, data in database_bytes(home):
        problems += leaks(data, name)
    for args in (["history"], ["history", "--json"], ["history", "show"], ["history", "show", "last", "--json"],
                 ["diff"], ["diff", "--json"]):
        out = cli(args, env)
        problems += leaks(out.stdout + out.stderr, " ".join(args))
        if "--json" in args:
            json.loads(out.stdout)
    assert not problems, problems


def test_diagnose_of_a_gui_log_holding_secrets(isolated_env, tmp_path):
    log = tmp_path / "gui.log"
    log.write_text(GUI_LOG, encoding="utf-8")
    screen = cli(["diagnose", str(log)], isolated_env)
    as_json = cli(["diagnose", str(log), "--json"], isolated_env)
    assert screen.returncode == as_json.returncode == 0, screen.stderr
    data = json.loads(as_json.stdout)  # valid JSON although the log holds --wandb_api_key=V
    assert data["diagnoses"] and data["failures"]
    problems = leaks(screen.stdout + screen.stderr, "diagnose") + leaks(as_json.stdout + as_json.stderr, "--json")
    assert not problems, problems
    for line in screen.stdout.decode().splitlines() + [data["diagnoses"][0].get("fix_command") or ""]:
        if "[REDACTED]" in line:  # a corrected command stays pasteable: its quotes balance
            assert line.count('"') % 2 == 0 and line.count("'") % 2 == 0, line


@pytest.mark.parametrize("text, kept", [
    (f"GET /api?token%3D{TOKEN}&x=1", "GET /api?token%3Dhf_[REDACTED]&x=1"),
    (f"body=%22{TOKEN}%22", "body=%22hf_[REDACTED]%22"),
    (f"\x1b[1m{TOKEN}\x1b[0m", "\x1b[1mhf_[REDACTED]\x1b[0m"),
    (f"x{TOKEN}", "xhf_[REDACTED]"),  # 30+ characters: a token wherever it stands
    ("--wandb_api_key V1 --wandb-api-key V2 --apikey=V3 --huggingface_token=V4",
     "--wandb_api_key [REDACTED] --wandb-api-key [REDACTED] --apikey=[REDACTED] --huggingface_token=[REDACTED]"),
    ("WANDB_API_KEY=abc123 HF_TOKEN=hf_short1 PASSWORD='a b'", "WANDB_API_KEY=[REDACTED] HF_TOKEN=hf_[REDACTED] PASSWORD=[REDACTED]"),
    ("--pretrained_model_name_or_path=https://user:pa55word@host/x", "--pretrained_model_name_or_path=https://user:[REDACTED]@host/x"),
    ("{'wandb_api_key': 'abc', \"hf_token\": \"xyz\"}", "{'wandb_api_key': '[REDACTED]', \"hf_token\": \"[REDACTED]\"}"),
    ("Namespace(wandb_api_key='abc', lr=1)", "Namespace(wandb_api_key=[REDACTED], lr=1)"),
    ("--keep_tokens 1 --max_token_length=225 load_hf_model self.hf_hub", "--keep_tokens 1 --max_token_length=225 load_hf_model self.hf_hub"),
    ("invalid token for user; Token: expired", "invalid token for user; Token: expired"),
])
def test_redact_text_forms(text, kept):
    assert redact_text(text) == kept
    assert redact_text(kept) == kept  # idempotent
    assert redact_bytes(text.encode()) == kept.encode()  # the log's bytes redact as the text does


def test_secret_names_and_argv():
    for name in ("wandb_api_key", "--wandb-api-key", "apikey", "huggingface_token", "HF_TOKEN", "db_password",
                 "client_secret", "passwd"):
        assert is_secret_option(name), name
    for name in ("keep_tokens", "max_token_length", "token_warmup_step", "output_dir"):
        assert not is_secret_option(name), name
    assert redact_argv(["--wandb_api_key", "V", "--wandb-api-key", "W", "--apikey=X", "--hf_token", "--x", "y"]) == [
        "--wandb_api_key", "[REDACTED]", "--wandb-api-key", "[REDACTED]", "--apikey=[REDACTED]", "--hf_token", "--x", "y"]


def test_redact_obj_keeps_json_valid():
    obj = {"command": ["t.py", "--wandb_api_key=a\"b,c", "--huggingface_token", "V\",\"x"],
           "wandb_api_key": "plain", "nested": [{"token": 3, "keep_tokens": 1}], "message": f"url?token%3D{TOKEN}"}
    text = json.dumps(redact_obj(obj))
    back = json.loads(text)
    assert back["command"] == ["t.py", "--wandb_api_key=[REDACTED]", "--huggingface_token", "[REDACTED]"]
    assert back["wandb_api_key"] == "[REDACTED]" and back["nested"] == [{"token": "[REDACTED]", "keep_tokens": 1}]
    assert TOKEN not in text and "plain" not in text


def test_a_token_split_by_the_cut_of_a_long_blank_free_line(tmp_path):
    from lora_doctor.run.stream import LogWriter

    path = tmp_path / "l.log"
    line = ("xxxxxxxxxx" + TOKEN) * 5000 + "\n"  # 235 kB, no blank, a token every 47 bytes
    log = LogWriter(str(path))
    for i in range(0, len(line), 10_000):  # arriving in reads that do not end lines
        log.write(line[i:i + 10_000].encode())
    log.close()
    assert not leaks(path.read_bytes(), "the log")
