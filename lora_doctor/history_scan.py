"""Find a token in shell history files by hash: which file, which lines; never the token."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .hf_auth import digest, home_dir

MAX_BYTES = 32 << 20  # a history file bigger than this is read up to here
WORD_RE = re.compile(r"[A-Za-z0-9_\-\.…]{8,}")


@dataclass(frozen=True)
class Hit:
    shell: str
    path: Path
    lines: tuple[int, ...]  # 1-based


def history_files(env: Mapping[str, str]) -> list[tuple[str, Path]]:
    """(shell, path) of every history file that exists, bash/zsh/fish/PowerShell/Python."""
    home = home_dir(env)
    data = Path(env["XDG_DATA_HOME"]) if env.get("XDG_DATA_HOME") else home / ".local" / "share"
    candidates: list[tuple[str, Path]] = []
    if env.get("HISTFILE"):
        candidates.append(("shell", Path(os.path.expanduser(env["HISTFILE"]))))
    candidates += [("bash", home / ".bash_history"), ("zsh", home / ".zsh_history"),
                   ("zsh", home / ".zhistory"), ("fish", data / "fish" / "fish_history"),
                   ("PowerShell", data / "powershell" / "PSReadLine" / "ConsoleHost_history.txt"),
                   ("python", home / ".python_history")]
    if env.get("APPDATA"):
        candidates.append(("PowerShell", Path(env["APPDATA"]) / "Microsoft" / "Windows" / "PowerShell"
                           / "PSReadLine" / "ConsoleHost_history.txt"))
    seen: set[str] = set()
    out = []
    for shell, path in candidates:
        key = os.path.normcase(str(path))
        if key in seen or not path.is_file():
            continue
        seen.add(key)
        out.append((shell, path))
    return out


def lines_with(text: str, wanted: set[str]) -> tuple[int, ...]:
    """1-based numbers of the lines holding a word whose digest is in `wanted`."""
    hits = []
    for number, line in enumerate(text.splitlines(), 1):
        # quotes, '=' and ':' separate words in `--token=hf_…`, `HF_TOKEN="hf_…"`, `token:hf_…`
        for word in WORD_RE.findall(line):
            if digest(word) in wanted or any(digest(part) in wanted for part in _pieces(word)):
                hits.append(number)
                break
    return tuple(hits)


def _pieces(word: str):
    start = word.find("hf_")
    if start > 0:
        yield word[start:]
    trimmed = word.rstrip(".")
    if trimmed != word:
        yield trimmed


def scan(token: str, env: Mapping[str, str]) -> list[Hit]:
    """Every history file holding `token` (compared by hash), with line numbers."""
    wanted = {digest(token)}
    found = []
    for shell, path in history_files(env):
        try:
            with open(path, "rb") as fh:
                text = fh.read(MAX_BYTES).decode("utf-8", "replace")
        except OSError:
            continue
        lines = lines_with(text, wanted)
        if lines:
            found.append(Hit(shell, path, lines))
    return found


def argv_positions(token: str, argv: list[str]) -> list[int]:
    """0-based positions of command-line items that hold `token`."""
    wanted = {digest(token)}
    return [i for i, item in enumerate(argv) if lines_with(item, wanted)]
