"""Shared fixtures: run the real CLI in a subprocess with an isolated HOME and no network."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def _own_user_folders(tmp_path_factory, monkeypatch):
    """Each test (and the CLI it starts) gets its own plugin folder and history: none reads the user's or another test's."""
    base = tmp_path_factory.mktemp("user-folders")
    monkeypatch.setenv("LORA_DOCTOR_HOME", str(base / "lora-doctor"))
    for key, sub in (("XDG_CONFIG_HOME", "config"), ("XDG_DATA_HOME", "data"), ("XDG_STATE_HOME", "state")):
        monkeypatch.setenv(key, str(base / sub))


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



@pytest.fixture
def unprivileged():
    """Runs CLI calls as an unprivileged user (tests/support/unprivileged.py): permission tests
    mean something under root too. Skips only as root without setpriv or runuser."""
    from support.unprivileged import Unprivileged, prefix

    argv = prefix()
    if argv is None:
        pytest.skip("needs a non-root user, or root with setpriv/runuser (chmod does not stop root)")
    helper = Unprivileged(argv)
    try:
        yield helper
    finally:
        helper.cleanup()
