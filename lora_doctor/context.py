"""The Context every check sees: the target interpreter and its facts, the command, the options."""

from __future__ import annotations

import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from lora_doctor.launch.command import Launch, resolve_path
from lora_doctor.model import Severity
from lora_doctor.target.probe import DEFAULT_TIMEOUT as PROBE_TIMEOUT


class Facts:
    """The target interpreter's probed facts, computed once in the background.

    Checks that need them call `get()` (which waits for the probe); checks that do not
    never wait, so the torch import in the probe runs in parallel with them. The time each thread
    spends waiting is kept (`waited`), so that the host does not charge it to a check's budget.
    """

    def __init__(self, python: str, timeout: float, cwd: str | None = None, preset: dict | None = None,
                 env: Mapping[str, str] | None = None):
        self.python = python
        self._value = preset
        self._done = threading.Event()
        self._ready_at = 0.0
        self._waits: dict[int, list[float]] = {}  # thread id -> [seconds waited, waiting since or 0]
        self._waits_lock = threading.Lock()
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
        self.wait()
        return self._value

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the probe without taking its facts; True once they are there."""
        if self._done.is_set():
            return True
        me = threading.get_ident()
        with self._waits_lock:
            entry = self._waits.setdefault(me, [0.0, 0.0])
            entry[1] = time.monotonic()
        try:
            return self._done.wait(timeout)
        finally:
            with self._waits_lock:
                entry[0] += time.monotonic() - entry[1]
                entry[1] = 0.0

    def waited(self, thread_id: int | None, now: float | None = None) -> float:
        """Seconds the thread `thread_id` has spent waiting for the probe so far (its current wait too)."""
        with self._waits_lock:
            total, since = self._waits.get(thread_id, (0.0, 0.0))
        return total + (max(0.0, (now or time.monotonic()) - since) if since else 0.0)

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
    # how the target was chosen (lora_doctor.target.find.Choice.source): "--python", "command",
    # "active venv", "conda env", "accelerate on PATH", "layout", "own"; "none" when no training
    # Python was found (`python` is then lora-doctor's own, probed for the machine's facts only)
    python_source: str
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
    python_why: str = ""  # one line: why this interpreter (shown in the header)

    def __post_init__(self):
        if isinstance(self.facts, dict):  # Context(facts={...}) in tests: preset facts, no probe
            object.__setattr__(self, "facts", Facts(self.python, 0, preset=self.facts))

    @property
    def script_name(self) -> str:
        return self.launch.script_name if self.launch else ""

    @property
    def is_offline(self) -> bool:
        """lora-doctor must not call the network: --offline, or training itself is offline."""
        return self.offline or self.training_offline

    @property
    def training_offline(self) -> bool:
        """HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE truthy (as huggingface_hub reads them): training itself will
        not reach the Hub. `--offline` alone does not say that: it only keeps lora-doctor off the network."""
        truthy = {"1", "on", "yes", "true"}
        return any(self.env.get(v, "").strip().lower() in truthy for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))

    def unverified_severity(self) -> Severity:
        """The severity of a download training needs (a tokenizer, a model repo) that is not cached
        when lora-doctor may not ask the Hub: an error when training is offline too (HF_HUB_OFFLINE: the
        download will fail), else a warning that it was not checked (training itself will be online)."""
        return Severity.ERROR if self.training_offline else Severity.WARN

    @property
    def found_training_python(self) -> bool:
        """False when no training interpreter was found and `python` is lora-doctor's own."""
        return self.python_source != "none"

    def option(self, name: str, default=None):
        return self.options.get(name, default)

    def path_option(self, name: str) -> Path | None:
        """An option holding a path, resolved against the command's working directory."""
        value = self.options.get(name)
        if not isinstance(value, str) or not value:
            return None
        return resolve_path(value, self.cwd)


def find_sd_scripts(launch: Launch | None, explicit: str | None, cwd: Path) -> Path | None:
    """The sd-scripts checkout: --sd-scripts, else the script's folder, else the cwd if it looks like one,
    else the sd-scripts folder inside it (a kohya_ss, lora-scripts or LoRA_Easy_Training_Scripts folder)."""
    from lora_doctor.target.find import CHECKOUT_SUBFOLDERS

    if explicit:
        return Path(explicit).expanduser().resolve()
    candidates = []
    if launch and launch.script:
        script = Path(launch.script)
        candidates.append((script if script.is_absolute() else cwd / script).parent)
    candidates += [cwd, *(cwd / sub for sub in CHECKOUT_SUBFOLDERS)]
    for folder in candidates:
        if (folder / "library" / "train_util.py").exists() or (folder / "requirements.txt").exists() and (folder / "train_network.py").exists():
            return folder.resolve()
    return None


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
    from lora_doctor.target.find import choose, venv_of_checkout

    checkout = find_sd_scripts(launch, sd_scripts, cwd)
    chosen = choose(python, launch, checkout, cwd, env)
    if options is None:
        options = dict(launch.options) if launch else {}
    model = model or (options.get("pretrained_model_name_or_path") if isinstance(
        options.get("pretrained_model_name_or_path"), str) else None)
    return Context(python=chosen.python, python_source=chosen.source, python_why=chosen.why,
                   facts=Facts(chosen.python, probe_timeout, str(checkout or cwd), preset=facts, env=env),
                   launcher_found=launcher_found(launch, cwd, env),
                   sd_scripts_venv=venv_of_checkout(checkout),
                   launch=launch, options=dict(options), sd_scripts_dir=checkout, model=model,
                   offline=offline, verbose=verbose, cwd=cwd, env=env)
