"""Permission tests that also run as root (CI containers): the CLI call runs as an unprivileged user.

chmod 000 / 555 does not stop root, so under root these tests proved nothing and were skipped.
Here the call under test runs as `nobody` (setpriv, else runuser) on files in a folder that user
can reach; as a normal user it simply runs as that user. Only root without either tool skips.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

NOBODY = 65534


def prefix() -> list[str] | None:
    """argv prefix that runs a command unprivileged: [] when we are not root; None when impossible."""
    if os.name == "nt":
        return None
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv"):
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    if shutil.which("runuser"):
        return ["runuser", "-u", "nobody", "--"]
    return None


class Unprivileged:
    """A folder the unprivileged user can read (`tmp`, where tests build their files) and a home
    it can write, and the CLI run as that user."""

    def __init__(self, argv_prefix: list[str]):
        self.prefix = argv_prefix
        self.tmp = Path(tempfile.mkdtemp(prefix="lora-doctor-unprivileged-"))
        self.tmp.chmod(0o755)
        self.home = self.tmp / "home"
        self.home.mkdir()
        self.home.chmod(0o777)

    def env(self, base: dict) -> dict:
        home = str(self.home)
        return dict(base, HOME=home, USERPROFILE=home, LORA_DOCTOR_HOME=os.path.join(home, "lora-doctor"),
                    HF_HOME=os.path.join(home, "hf"), XDG_CONFIG_HOME=os.path.join(home, "config"),
                    XDG_CACHE_HOME=os.path.join(home, "cache"), XDG_DATA_HOME=os.path.join(home, "data"),
                    XDG_STATE_HOME=os.path.join(home, "state"))

    def run_cli(self, args, env: dict, cwd=None, timeout=120):
        return subprocess.run([*self.prefix, sys.executable, "-m", "lora_doctor", *args], capture_output=True,
                              text=True, env=self.env(env), cwd=str(cwd or self.tmp), timeout=timeout,
                              encoding="utf-8", errors="replace")

    def cleanup(self) -> None:
        for path in [self.tmp, *self.tmp.rglob("*")]:
            try:
                if path.is_dir() and not path.is_symlink():
                    path.chmod(0o755)
            except OSError:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)
