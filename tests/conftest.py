"""Shared fixtures: run the real CLI in a subprocess with an isolated HOME and no network."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(autouse=True, scope="session")
def _keep_the_users_folders_untouched(tmp_path_factory):
    """No test (nor the CLI it starts) reads the user's plugin folder or writes the user's history."""
    base = tmp_path_factory.mktemp("user-folders")
    saved = {k: os.environ.get(k) for k in ("LORA_DOCTOR_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME")}
    os.environ.update(LORA_DOCTOR_HOME=str(base / "lora-doctor"), XDG_CONFIG_HOME=str(base / "config"),
                      XDG_DATA_HOME=str(base / "data"), XDG_STATE_HOME=str(base / "state"))
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def isolated_env(tmp_path, monkeypatch):
    """An environment with a fresh HOME/HF_HOME, no HF token, the Hub pointed at a dead loopback port."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HF_", "HUGGING", "GIT_", "XDG_")) and k not in ("LORA_DOCTOR_PLUGIN_PATH", "LORA_DOCTOR_DEBUG")}
    env.update(HOME=str(home), USERPROFILE=str(home), HF_HOME=str(home / ".cache" / "huggingface"),
               HF_ENDPOINT="http://127.0.0.1:9", XDG_CONFIG_HOME=str(home / ".config"),
               XDG_CACHE_HOME=str(home / ".cache"), XDG_DATA_HOME=str(home / ".local" / "share"),
               NO_COLOR="1", PYTHONIOENCODING="utf-8", GIT_CONFIG_NOSYSTEM="1")
    return env


def run_cli(args, env=None, cwd=None, input=None, timeout=120):
    """Run `python -m lora_doctor ARGS` for real; returns CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "lora_doctor", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, input=input, timeout=timeout, encoding="utf-8", errors="replace")
