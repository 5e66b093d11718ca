"""What many tests share: the repository's folders, the CLI in a subprocess, the cause ids of CAUSES.md."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"

def run_cli(args, env=None, cwd=None, input=None, timeout=120):
    """Run `python -m lora_doctor ARGS` for real; returns CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "lora_doctor", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, input=input, timeout=timeout, encoding="utf-8", errors="replace")


def cause_ids() -> list[str]:
    """Every cause id CAUSES.md (the shipped copy under tests/data/corpus) defines."""
    text = (DATA / "corpus" / "CAUSES.md").read_text("utf-8")
    return re.findall(r"^\| `([a-z_]+(?:\.[a-z0-9_]+)?)` \|", text, re.M)
