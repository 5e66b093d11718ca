"""The Context every check sees: the target interpreter and its facts, the command, the options."""

from __future__ import annotations

import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from lora_doctor.launch.command import Launch, resolve_path
from lora_doctor.target.probe import DEFAULT_TIMEOUT as PROBE_TIMEOUT


class Facts:
    """The target interpreter's probed facts, computed once in the background.

    Checks that need them call `get()` (which waits for the probe); checks that do not
    never wait, so the torch import in the probe runs in parallel with them.
    """

    def __init__(self, python: str, timeout: float, cwd: str | None = None, preset: dict | None = None,
                 env: Mapping[str, str] | None = None):
        self.python = python
        self._value = preset
        self._done = threading.Event()
        self._ready_at = 0.0
        if preset is not None:
            from lora_doctor.target.probe import complete_facts

            self._value = complete_facts(preset, python)
            self._ready_at = time.monotonic()
            self._done.set()
            return
        self._thread = threading.Thread(target=self._run, args=(timeout, cwd, env), daemon=True,
                                        name="probe")
        self._thread.start()

    def _run(self, timeout: float, cwd: str | None, env) -> None:
        from lora_doctor.target.probe import failed, run_probe

        try:
            self._value = run_probe(self.python, timeout, cwd, None if env is None else dict(env))
        except Exception as exc:  # run_probe never raises; belt and braces for the thread
            self._value = failed(self.python, f"{type(exc).__name__}: {exc}")
        finally:
            self._ready_at = time.monotonic()
            self._done.set()

    def get(self) -> dict:
        self._done.wait()
        return self._value

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the probe without taking its facts; True once they are there."""
        return self._done.wait(timeout)

    @property
    def ready_at(self) -> float:
        """time.monotonic() when the facts arrived (the probe is bounded, so this comes)."""
        return self._ready_at

    @property
    def ready(self) -> bool:
        return self._done.is_set()


@dataclass(frozen=True)
class Context:
    """What a check knows. Immutable; built once per command by `build_context`.

    `options` are the training script's options (name without "--" -> value), merged with its
    `--config_file` when there is one; `model` is `--model` or the command's
    `--pretrained_model_name_or_path`; `sd_scripts_dir` the checkout when it was found.
    """

    python: str
    python_source: str  # how the target was chosen: "--python", "command", "sd-scripts venv", "current"
    facts: Facts
    launch: Launch | None = None
    options: Mapping[str, object] = field(default_factory=dict)
    sd_scripts_dir: Path | None = None
    model: str | None = None
    offline: bool = False
    verbose: bool = False
    cwd: Path = field(default_factory=Path.cwd)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    launcher_found: bool | None = None  # the command's first word is on PATH (None: no command)
    sd_scripts_venv: Path | None = None  # the checkout's own venv interpreter, when it has one

    def __post_init__(self):
        if isinstance(self.facts, dict):  # Context(facts={...}) in tests: preset facts, no probe
            object.__setattr__(self, "facts", Facts(self.python, 0, preset=self.facts))

    @property
    def script_name(self) -> str:
        return self.launch.script_name if self.launch else ""

    @property
    def is_offline(self) -> bool:
        """--offline or HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE truthy (as huggingface_hub reads them)."""
        truthy = {"1", "on", "yes", "true"}
        return self.offline or any(self.env.get(v, "").strip().lower() in truthy
                                   for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))

    def option(self, name: str, default=None):
        return self.options.get(name, default)

    def path_option(self, name: str) -> Path | None:
        """An option holding a path, resolved against the command's working directory."""
        value = self.options.get(name)
        if not isinstance(value, str) or not value:
            return None
        return resolve_path(value, self.cwd)


def _venv_python(folder: Path) -> Path | None:
    for rel in ("venv/bin/python", "venv/Scripts/python.exe", ".venv/bin/python", ".venv/Scripts/python.exe"):
        candidate = folder / rel
        if candidate.exists():
            return candidate
    return None


def _shebang_python(script: str, path: str) -> str | None:
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


def _launcher_python(launch: Launch, cwd: Path, env: Mapping[str, str]) -> str | None:
    """The interpreter the wrapped command will use: its python, or the one behind `accelerate`."""
    path = env.get("PATH", os.defpath)
    if launch.python:
        return shutil.which(launch.python, path=path)
    exe = launch.argv[0] if launch.argv else ""
    if launch.launcher in ("accelerate", "torchrun"):
        found = shutil.which(exe, path=path) or (str(cwd / exe) if (cwd / exe).exists() else None)
        if found:
            python = _shebang_python(found, path)
            if python:
                return python
            sibling = Path(found).parent / ("python.exe" if os.name == "nt" else "python")
            if sibling.exists():
                return str(sibling)
    return None


def resolve_python_option(value: str, cwd: Path, env: Mapping[str, str]) -> str | None:
    """`--python` as given: a path, a name on PATH, or a venv/sd-scripts folder; None if not found."""
    candidate = Path(os.path.expanduser(value))
    if not candidate.is_absolute():
        candidate = cwd / candidate
    if candidate.is_dir():
        inner = _venv_python(candidate.parent) if candidate.name in ("venv", ".venv") else None
        inner = inner or _venv_python(candidate)
        for rel in ("bin/python", "Scripts/python.exe", "python.exe"):
            if inner is None and (candidate / rel).is_file():
                inner = candidate / rel
        return str(inner) if inner else None
    if candidate.is_file():
        return str(candidate)
    if os.name == "nt" and candidate.with_name(candidate.name + ".exe").is_file():  # `venv\Scripts\python`
        return str(candidate.with_name(candidate.name + ".exe"))
    if os.sep not in value and "/" not in value:
        return shutil.which(value, path=env.get("PATH", os.defpath))
    return None


def find_sd_scripts(launch: Launch | None, explicit: str | None, cwd: Path) -> Path | None:
    """The sd-scripts checkout: --sd-scripts, else the script's folder, else the cwd if it looks like one."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    candidates = []
    if launch and launch.script:
        script = Path(launch.script)
        candidates.append((script if script.is_absolute() else cwd / script).parent)
    candidates.append(cwd)
    for folder in candidates:
        if (folder / "library" / "train_util.py").exists() or (folder / "requirements.txt").exists() and (folder / "train_network.py").exists():
            return folder.resolve()
    return None


def choose_python(explicit: str | None, launch: Launch | None, sd_scripts: Path | None,
                  cwd: Path, env: Mapping[str, str]) -> tuple[str, str]:
    """(interpreter, how it was chosen): --python, the command's, the sd-scripts venv, ours."""
    if explicit:
        return resolve_python_option(explicit, cwd, env) or explicit, "--python"
    if launch is not None:
        found = _launcher_python(launch, cwd, env)
        if found:
            return found, "command"
    if sd_scripts is not None:
        venv = _venv_python(sd_scripts)
        if venv:
            return str(venv), "sd-scripts venv"
    return sys.executable, "current"


def launcher_found(launch: Launch | None, cwd: Path, env: Mapping[str, str]) -> bool | None:
    """Whether the command's first word (accelerate, python …) exists; None without a command."""
    if launch is None or not launch.argv:
        return None
    exe = launch.argv[0]
    if launch.launcher == "script":
        return True  # a bare script path: the sd-scripts checks judge it
    return bool(shutil.which(exe, path=env.get("PATH", os.defpath)) or (cwd / exe).exists())


def build_context(*, python: str | None = None, launch: Launch | None = None, sd_scripts: str | None = None,
                  model: str | None = None, offline: bool = False, verbose: bool = False,
                  options: Mapping[str, object] | None = None, probe_timeout: float = PROBE_TIMEOUT,
                  cwd: Path | None = None, env: Mapping[str, str] | None = None,
                  facts: dict | None = None) -> Context:
    """Build the Context and start the probe in the background."""
    cwd = cwd or Path.cwd()
    env = dict(os.environ if env is None else env)
    checkout = find_sd_scripts(launch, sd_scripts, cwd)
    target, how = choose_python(python, launch, checkout, cwd, env)
    if options is None:
        options = dict(launch.options) if launch else {}
    model = model or (options.get("pretrained_model_name_or_path") if isinstance(
        options.get("pretrained_model_name_or_path"), str) else None)
    return Context(python=target, python_source=how,
                   facts=Facts(target, probe_timeout, str(checkout or cwd), preset=facts, env=env),
                   launcher_found=launcher_found(launch, cwd, env),
                   sd_scripts_venv=_venv_python(checkout) if checkout else None,
                   launch=launch, options=dict(options), sd_scripts_dir=checkout, model=model,
                   offline=offline, verbose=verbose, cwd=cwd, env=env)
