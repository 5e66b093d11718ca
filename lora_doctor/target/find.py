"""Find the Python that will train: the one the command, the shell or the folder layout points at.

lora-doctor usually runs from its own environment (a `.venv` of its own, pipx), which is not where
sd-scripts' packages are. The training interpreter is, in this order:

1. `--python PATH` (a path, a name on PATH, or a venv folder);
2. the interpreter the command names by path (`/srv/kohya_ss/venv/bin/accelerate launch …`,
   `venv/bin/python train_network.py …`);
3. the activated venv or conda env (`VIRTUAL_ENV`, `CONDA_PREFIX`) when it is not lora-doctor's own;
4. the launcher the command names, found on PATH (`accelerate` → the Python of its `#!` line or the
   `python` beside it; `python …`, `python -m accelerate.commands.launch …`), and without a command
   the `accelerate` on PATH;
5. the venv of the training folder, next to the script or under the current folder:
   sd-scripts `venv/` (`.venv/`); kohya_ss `venv/` beside `sd-scripts/`; lora-scripts `venv/` or
   its bundled `python/` beside `sd-scripts/`; LoRA_Easy_Training_Scripts `backend/venv/` beside
   `backend/sd_scripts/` (or `sd_scripts/venv/`); POSIX `bin/python` and Windows
   `Scripts\\python.exe` alike;
6. lora-doctor's own Python, only when it has torch installed (lora-doctor was installed into the
   training environment).

Anything in lora-doctor's own environment without torch is skipped: it has none of sd-scripts'
packages, and advising to install them there would fix nothing. When nothing is found the choice
says so (`source == "none"`) and the probe still runs in lora-doctor's own Python for what does not
depend on the training environment (the OS, the GPU driver).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

# A venv/conda/embedded-Python folder's interpreter, POSIX and Windows layouts.
INTERPRETERS = ("bin/python", "bin/python3", "Scripts/python.exe", "python.exe", "bin/python.exe")
VENV_NAMES = ("venv", ".venv")
# Folders that hold sd-scripts inside a GUI's folder: kohya_ss and lora-scripts use `sd-scripts`,
# LoRA_Easy_Training_Scripts `backend/sd_scripts` (older versions `sd_scripts`).
CHECKOUT_SUBFOLDERS = ("sd-scripts", "sd_scripts", "backend/sd_scripts")


@dataclass(frozen=True)
class Choice:
    """The training interpreter (lora-doctor's own when `source == "none"`), the key of how it was
    chosen, and one line that says why."""

    python: str
    source: str  # "--python", "command", "active venv", "conda env", "accelerate on PATH", "layout", "own", "none"
    why: str


def interpreter_in(folder: Path) -> Path | None:
    """The python inside a venv, conda env or embedded-Python folder, or None."""
    for rel in INTERPRETERS:
        candidate = folder / rel
        if candidate.is_file():
            return candidate
    return None


def env_root(python: str | os.PathLike) -> Path:
    """The environment folder of an interpreter: the parent of bin/ or Scripts/, else its folder."""
    folder = Path(os.path.abspath(python)).parent
    return folder.parent if folder.name.lower() in ("bin", "scripts") else folder


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.normcase(os.path.abspath(a)) == os.path.normcase(os.path.abspath(b))


def own_root() -> Path:
    return Path(sys.prefix)


def has_torch(root: Path) -> bool:
    """torch is installed in the environment at `root` (looked up on disk, nothing imported)."""
    patterns = ("lib/python3*/site-packages/torch/__init__.py", "Lib/site-packages/torch/__init__.py",
                "lib/site-packages/torch/__init__.py")
    return any(next(root.glob(p), None) is not None for p in patterns)


def is_own(python: str | os.PathLike) -> bool:
    """The interpreter belongs to lora-doctor's own environment (sys.prefix)."""
    return _same(env_root(python), own_root())


def usable(python: str | os.PathLike | None) -> bool:
    """A candidate worth probing: it exists, and it is not lora-doctor's own torch-less environment."""
    if not python or not os.path.exists(python):
        return False
    return not is_own(python) or has_torch(own_root())


def shebang_python(script: str, path: str) -> str | None:
    """The interpreter a console script's `#!` line names (`#!/usr/bin/env python3` too)."""
    try:
        with open(script, "rb") as fh:
            first = fh.readline(512).decode("utf-8", "replace")
    except OSError:
        return None
    if not first.startswith("#!") or "python" not in first:
        return None
    words = first[2:].split()
    if words and os.path.basename(words[0]) == "env" and len(words) > 1:
        return shutil.which(words[-1], path=path)
    return words[0] if words else None


def behind_launcher(exe: str) -> str | None:
    """The Python a console script (`accelerate`, `accelerate.exe`) runs: its `#!` line, or the python
    in its folder (pip's Windows launchers are .exe files with the interpreter beside them)."""
    python = shebang_python(exe, os.defpath)
    if python and os.path.exists(python):
        return python
    found = interpreter_in(env_root(exe))
    return str(found) if found else None


def resolve_python_option(value: str, cwd: Path, env: Mapping[str, str]) -> str | None:
    """`--python` as given: a path, a name on PATH, or a venv/sd-scripts folder; None if not found."""
    candidate = Path(os.path.expanduser(value))
    if not candidate.is_absolute():
        candidate = cwd / candidate
    if candidate.is_dir():
        found = interpreter_in(candidate)
        if found is None:
            for name in VENV_NAMES:
                found = found or interpreter_in(candidate / name)
        return str(found) if found else None
    if candidate.is_file():
        return str(candidate)
    if os.name == "nt" and candidate.with_name(candidate.name + ".exe").is_file():  # `venv\Scripts\python`
        return str(candidate.with_name(candidate.name + ".exe"))
    if os.sep not in value and "/" not in value:
        return shutil.which(value, path=env.get("PATH", os.defpath))
    return None


def _has_path(word: str) -> bool:
    return "/" in word or "\\" in word


def _named_by_path(launch, cwd: Path) -> tuple[str, str] | None:
    """(python, why) when the command names its interpreter or launcher by a path."""
    if launch is None or not launch.argv:
        return None
    if launch.python and _has_path(launch.python):
        path = Path(os.path.expanduser(launch.python))
        path = path if path.is_absolute() else cwd / path
        return str(path), f"the command's interpreter {launch.python}"
    exe = launch.argv[0]
    if launch.launcher in ("accelerate", "torchrun") and _has_path(exe):
        path = Path(os.path.expanduser(exe))
        path = path if path.is_absolute() else cwd / path
        python = behind_launcher(str(path)) if path.exists() else None
        if python:
            return python, f"the Python behind the command's {exe}"
    return None


def _on_path(launch, env: Mapping[str, str]) -> tuple[str, str, str] | None:
    """(python, source, why) of the launcher found on PATH; `accelerate` without a command."""
    path = env.get("PATH", os.defpath)
    if launch is not None and launch.python and not _has_path(launch.python):
        found = shutil.which(launch.python, path=path)
        if found:
            return found, "command", f"the command's `{launch.python}`, found on PATH"
        return None
    word = launch.argv[0] if launch is not None and launch.argv and launch.launcher in ("accelerate", "torchrun") \
        else "accelerate"
    if _has_path(word):
        return None
    found = shutil.which(word, path=path)
    python = behind_launcher(found) if found else None
    if python:
        source = "command" if launch is not None and launch.launcher in ("accelerate", "torchrun") else "accelerate on PATH"
        return python, source, f"the Python behind `{word}` on PATH"
    return None


def looks_like_checkout(folder: Path) -> bool:
    return (folder / "train_network.py").is_file() or (folder / "library" / "train_util.py").is_file()


def _gui_name(root: Path, checkout: Path) -> str:
    if (root / "kohya_gui.py").exists() or root.name.lower().startswith("kohya"):
        return "kohya_ss"
    if root.name.lower() == "backend" or "easy" in root.name.lower():
        return "LoRA_Easy_Training_Scripts"
    return "lora-scripts" if (root / "python").is_dir() or "lora-scripts" in root.name.lower() else "the folder"


def layout_candidates(checkout: Path) -> list[tuple[Path, str]]:
    """(environment folder, why) to try for an sd-scripts checkout, its own venv first."""
    out = [(checkout / name, f"sd-scripts' {name}") for name in VENV_NAMES]
    if checkout.name.lower() in ("sd-scripts", "sd_scripts"):
        root = checkout.parent
        gui = _gui_name(root, checkout)
        for name in (*VENV_NAMES, "python"):
            out.append((root / name, f"{gui}'s {name} beside {checkout.name}"))
    return out


def checkouts(launch, sd_scripts: Path | None, cwd: Path) -> list[Path]:
    """sd-scripts folders to look beside: --sd-scripts, the script's folder, the current folder and the
    sd-scripts folder inside it (a GUI's root)."""
    found: list[Path] = []
    if sd_scripts is not None:
        found.append(sd_scripts)
    if launch is not None and launch.script:
        script = Path(os.path.expanduser(launch.script))
        found.append((script if script.is_absolute() else cwd / script).parent)
    if looks_like_checkout(cwd):
        found.append(cwd)
    found += [cwd / sub for sub in CHECKOUT_SUBFOLDERS if looks_like_checkout(cwd / sub)]
    unique: list[Path] = []
    for folder in found:
        folder = Path(os.path.abspath(folder))
        if folder not in unique:
            unique.append(folder)
    return unique


def choose(explicit: str | None, launch, sd_scripts: Path | None, cwd: Path,
           env: Mapping[str, str]) -> Choice:
    """The training interpreter and why (see the module docstring for the order)."""
    if explicit:
        return Choice(resolve_python_option(explicit, cwd, env) or explicit, "--python", "given with --python")
    named = _named_by_path(launch, cwd)
    if named and usable(named[0]):
        return Choice(named[0], "command", named[1])
    for var, source, what in (("VIRTUAL_ENV", "active venv", "the activated venv"),
                              ("CONDA_PREFIX", "conda env", "the activated conda env")):
        root = env.get(var, "").strip()
        python = interpreter_in(Path(root)) if root else None
        if python is not None and usable(python):
            return Choice(str(python), source, f"{what}, {var}")
    on_path = _on_path(launch, env)
    if on_path and usable(on_path[0]):
        return Choice(*on_path)
    for checkout in checkouts(launch, sd_scripts, cwd):
        for folder, why in layout_candidates(checkout):
            python = interpreter_in(folder)
            if python is not None and usable(python):
                return Choice(str(python), "layout", why)
    if has_torch(own_root()):
        return Choice(sys.executable, "own", "lora-doctor's own Python, which has torch")
    return Choice(sys.executable, "none", none_found_line(launch))


def none_found_line(launch=None) -> str:
    """The one line that says no training interpreter was found, and what to do."""
    return "no training Python found: point lora-doctor at it with --python PATH"


LOOKED_AT = ("--python, the command's interpreter, the activated venv or conda env (VIRTUAL_ENV, CONDA_PREFIX), "
             "`accelerate` on PATH, and the venv of sd-scripts, kohya_ss, lora-scripts or "
             "LoRA_Easy_Training_Scripts beside the script or in this folder")


def venv_of_checkout(checkout: Path | None) -> Path | None:
    """The checkout's own training interpreter (its venv, or the GUI's venv beside it), if any."""
    if checkout is None:
        return None
    for folder, _ in layout_candidates(checkout):
        python = interpreter_in(folder)
        if python is not None:
            return python
    return None


def shell_python(python: str, platform: str | None) -> str:
    """The training interpreter as the first word of a command the user pastes: quoted for POSIX shells;
    on Windows `& "C:\\…\\python.exe"` (PowerShell needs the call operator before a quoted path)."""
    if platform == "win32":
        return f'& "{python}"'
    from lora_doctor.launch.edit import quote

    return quote(python, platform)
