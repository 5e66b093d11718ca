"""`lora-doctor env` end to end: the token verdict on the terminal, in --json, and never the token."""

from __future__ import annotations

import json
from pathlib import Path

from support import run_cli
from support.hub_server import HubServer
from test_hf_token import new_token


def scan(proc, token):
    for stream in (proc.stdout, proc.stderr):
        assert token not in stream
        assert token[3:] not in stream


def test_seed_truncated_token_is_an_error_with_its_fix_and_exit_1(isolated_env):
    token_file = Path(isolated_env["HF_HOME"]) / "token"
    token_file.parent.mkdir(parents=True)
    token_file.write_text("hf_QwErTy...ZxCv\n")
    proc = run_cli(["env", "--offline", "--only", "auth.token"], env=isolated_env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "[✗] Hugging Face token: the token from the token file" in proc.stdout and "truncated" in proc.stdout
    assert "$ hf auth login --force" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_invalid_leaked_token_never_appears_in_any_output(isolated_env):
    token = new_token()
    home = Path(isolated_env["HOME"])
    (home / ".bash_history").write_text(f"huggingface-cli login --token {token}\n")
    with HubServer() as hub:  # knows no token: ours is invalid
        env = dict(isolated_env, HF_ENDPOINT=hub.url, HF_TOKEN=token)
        argv = ["--", "accelerate", "launch", "train_network.py", "--huggingface_token", token]
        text = run_cli(["env", "-v", "--only", "auth", *argv], env=env)
        data = run_cli(["env", "--json", "--only", "auth", *argv], env=env)
    for proc in (text, data):
        scan(proc, token)
        assert proc.returncode == 1
    assert "is invalid" in text.stdout and ".bash_history line 1" in text.stdout
    report = json.loads(data.stdout)
    check = next(c for c in report["checks"] if c["id"] == "auth.token")
    causes = {f["cause"] for f in check["findings"] if f["severity"] == "error"}
    assert causes == {"auth.invalid_token"}
    assert any("command line" in f["summary"] for f in check["findings"])
