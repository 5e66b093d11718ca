"""Find a token in shell history files by hash: which file, which lines; never the token."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from lora_doctor.hub.token import digest, home_dir

MAX_BYTES = 32 << 20  # a history file bigger than this is read up to here


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


@dataclass(frozen=True)
class Needle:
    """What is searched for: the token's digest, its length and its first 3 characters ("hf_")."""

    digest: str
    length: int
    prefix: str

    @classmethod
    def of(cls, token: str) -> "Needle":
        return cls(digest(token), len(token), token[:3])


def lines_with(text: str, needle: Needle) -> tuple[int, ...]:
    """1-based numbers of the lines holding the token: every string of its length that starts like
    it is hashed and compared; a plain search for the prefix keeps this fast on big files."""
    if needle.length < 4:
        return ()
    pattern = re.compile(re.escape(needle.prefix) + "(?=(.{%d}))" % (needle.length - len(needle.prefix)), re.DOTALL)
    hits: list[int] = []
    line, pos = 1, 0
    for m in pattern.finditer(text):
        if digest(needle.prefix + m.group(1)) != needle.digest:
            continue
        line += text.count("\n", pos, m.start())
        pos = m.start()
        if not hits or hits[-1] != line:
            hits.append(line)
    return tuple(hits)


def scan(token: str, env: Mapping[str, str]) -> list[Hit]:
    """Every history file holding `token` (compared by hash), with line numbers."""
    needle = Needle.of(token)
    found = []
    for shell, path in history_files(env):
        try:
            with open(path, "rb") as fh:
                text = fh.read(MAX_BYTES).decode("utf-8", "replace")
        except OSError:
            continue
        lines = lines_with(text, needle)
        if lines:
            found.append(Hit(shell, path, lines))
    return found


def argv_positions(token: str, argv: list[str]) -> list[int]:
    """0-based positions of command-line items that hold `token`."""
    needle = Needle.of(token)
    return [i for i, item in enumerate(argv) if lines_with(item, needle)]
