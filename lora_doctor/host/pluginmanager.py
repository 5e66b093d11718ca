"""Find, load and isolate plugins: builtins, the `lora_doctor` entry points, plugin folders.

A broken plugin costs only itself (docs/plugins.md, "What a plugin cannot break"):
- an external plugin is first imported in a subprocess with a time limit (host/precheck.py), so
  one that ends the process or hangs at import is listed as broken and never imported here;
- every import and every hook call runs as plugin code (host/isolation.py): its print() goes to
  stderr, its os._exit() raises, and the doctor stops waiting for it at its budget;
- a plugin that overruns a budget is reported and skipped for the rest of the command.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pluggy

from lora_doctor import hookspecs
from lora_doctor.host.isolation import HookTimeout, call_all, describe, plugin_code

ENTRY_POINT_GROUP = "lora_doctor"
PLUGIN_PATH_ENV = "LORA_DOCTOR_PLUGIN_PATH"

# Budgets in seconds. An import (in the pre-check subprocess, and here) and each hook; the
# register and diagnose hooks of all plugins run side by side, so N slow plugins cost one budget.
IMPORT_BUDGET = 5.0
PRECHECK_STARTUP = 2.0  # a second interpreter's own start-up, on top of IMPORT_BUDGET
HOOK_BUDGET = 3.0
WATCH_BUDGET = 1.0  # one watch_line call; see host/watch.py
# A .py in a plugin folder is imported only when it declares a hook: its text holds this marker.
PLUGIN_MARKER = b"hookimpl"
MAX_PLUGIN_FILE = 1 << 20  # bytes of a .py read to look for the marker

BUILTIN_PLUGINS = (
    "lora_doctor.plugins.python_env",
    "lora_doctor.plugins.gpu",
    "lora_doctor.plugins.versions",
    "lora_doctor.plugins.hf_token",
    "lora_doctor.plugins.credentials",
    "lora_doctor.plugins.model_format",
    "lora_doctor.plugins.accelerate_config",
    "lora_doctor.plugins.dataset",
    "lora_doctor.plugins.sdscripts_args",
    "lora_doctor.plugins.known_errors",
    "lora_doctor.plugins.diagnose_code",
    "lora_doctor.plugins.no_data_diagnose",
    "lora_doctor.plugins.command_diagnose",
    "lora_doctor.plugins.watch",
)


@dataclass
class PluginInfo:
    """Where a plugin came from, and why it is broken if it is."""

    name: str
    source: str  # "builtin", "entry point", "folder"
    location: str = ""
    error: str = ""
    checks: list[str] = field(default_factory=list)


def user_plugin_dir() -> Path:
    """The per-user plugin folder (e.g. ~/.config/lora-doctor/plugins on Linux)."""
    from platformdirs import user_config_dir

    return Path(user_config_dir("lora-doctor", appauthor=False)) / "plugins"


def plugin_dirs(extra: list[str] | tuple[str, ...] = ()) -> list[Path]:
    """Plugin folders in order: --plugin-dir, LORA_DOCTOR_PLUGIN_PATH, the per-user folder."""
    dirs = [Path(d) for d in extra]
    dirs += [Path(p) for p in os.environ.get(PLUGIN_PATH_ENV, "").split(os.pathsep) if p]
    dirs.append(user_plugin_dir())
    unique: dict[str, Path] = {}
    for d in dirs:  # a folder named twice (--plugin-dir and the env var) is loaded once
        unique.setdefault(os.path.normcase(os.path.abspath(os.path.expanduser(d))), d)
    return list(unique.values())


def declares_hooks(path: Path) -> bool:
    """A plugin-folder .py is a plugin when its text holds `hookimpl` (the marker every hook
    implementation is decorated with); other .py files (helper scripts) are never imported."""
    try:
        with open(path, "rb") as fh:
            return PLUGIN_MARKER in fh.read(MAX_PLUGIN_FILE)
    except OSError:
        return False


class PluginHost:
    """The pluggy manager plus what was loaded, from where, and what broke."""

    def __init__(self, extra_dirs=(), *, builtins=BUILTIN_PLUGINS, entry_points: bool = True,
                 precheck: bool = True):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self.signature_files: list[tuple[Path, str]] = []  # (path, plugin name)
        self.ignored_files: list[tuple[Path, str]] = []  # (a .py in a plugin folder, why it is not loaded)
        self.slow: dict[str, str] = {}  # plugin -> which budget it overran (skipped from then on)
        self.precheck = precheck
        self._watch = None
        for name in builtins:
            self._load_module(name, "builtin")
        if entry_points:
            self._load_entry_points()
        files = []
        for folder in plugin_dirs(list(extra_dirs)):
            files += self._scan_folder(folder)
        self._load_files(files)
        self._check_pending()

    def _check_pending(self) -> None:
        """A hook name no hookspec knows (a typo) marks its plugin broken and unregisters it."""
        for _ in range(len(self.plugins) + 1):
            try:
                self.pm.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self.pm.get_name(exc.plugin) if exc.plugin is not None else None
                info = self.info(name) if name else None
                if info is None:
                    self.plugins.append(PluginInfo("hook validation", "host", error=describe(exc)))
                    return
                info.error = f"unknown hook: {exc} (a misspelled hook name?)"
                self.pm.unregister(exc.plugin)

    # -- loading -------------------------------------------------------------------------
    def _register(self, module, info: PluginInfo) -> None:
        try:
            self.pm.register(module, name=info.name)
        except Exception as exc:  # a bad hookimpl signature, a duplicate name …
            info.error = describe(exc)
            if "lora_doctor_diagnose" in info.error and "'context'" in info.error:
                info.error += " (since 0.2 the hook is lora_doctor_diagnose(failure, postmortem): rename the argument)"
        self.plugins.append(info)

    def _load_module(self, name: str, source: str) -> None:
        try:
            with plugin_code():
                module = importlib.import_module(name)
        except Exception as exc:
            self.plugins.append(PluginInfo(name, source, name, error=describe(exc)))
            return
        self._register(module, PluginInfo(name, source, getattr(module, "__file__", "") or name))

    def _safe_to_import(self, targets) -> dict:
        """The pre-check's verdict for each external plugin ('' = import it here)."""
        if not self.precheck or not targets:
            return {t: "" for t in targets}
        from lora_doctor.host.precheck import precheck

        return precheck(targets, IMPORT_BUDGET + PRECHECK_STARTUP)

    def _import_bounded(self, load, info: PluginInfo, cleanup=None):
        """Run `load()` (an import) as plugin code within IMPORT_BUDGET; the module, or None with
        info.error set."""
        ((_, ok, value),) = call_all([(info.name, load, {})], IMPORT_BUDGET, name="import")
        if ok:
            return value
        if cleanup is not None:
            cleanup()
        if isinstance(value, HookTimeout):
            info.error = f"importing it took longer than {IMPORT_BUDGET:g} s; not loaded"
        else:
            info.error = describe(value)
        self.plugins.append(info)
        return None

    def _load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        eps = list(entry_points(group=ENTRY_POINT_GROUP))
        if not eps:
            return
        from lora_doctor.host.precheck import entry_point_target

        targets = {ep: entry_point_target(ep) for ep in eps}
        verdicts = self._safe_to_import(list(targets.values()))
        for ep in eps:
            info = PluginInfo(ep.name, "entry point", ep.value)
            if verdicts.get(targets[ep]):
                info.error = verdicts[targets[ep]]
                self.plugins.append(info)
                continue
            module = self._import_bounded(ep.load, info)
            if module is not None:
                self._register(module, info)

    def _scan_folder(self, folder: Path) -> list[Path]:
        """The plugin files of a folder; its .toml files are remembered as signature sources."""
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            return []  # a folder that does not exist is simply empty
        files = []
        for path in entries:
            if path.suffix == ".toml" and not path.name.startswith("_"):
                self.signature_files.append((path, f"folder:{folder}"))
            elif path.suffix == ".py" and not path.name.startswith("_"):
                if declares_hooks(path):
                    files.append(path)
                else:
                    self.ignored_files.append((path, "declares no hook (no `hookimpl` in it): not a plugin, "
                                                     "not imported"))
        return files

    def _load_files(self, files: list[Path]) -> None:
        from lora_doctor.host.precheck import file_target

        targets = {path: file_target(path, _module_name(path)) for path in files}
        verdicts = self._safe_to_import(list(targets.values()))
        for path in files:
            self._load_file(path, verdicts.get(targets[path], ""))

    def _load_file(self, path: Path, verdict: str = "") -> None:
        name = _module_name(path)
        info = PluginInfo(path.stem, "folder", str(path))
        earlier = self.info(path.stem)
        if earlier is not None:
            info.error = f"a plugin named {path.stem} is already loaded from {earlier.location}; rename one of them"
            self.plugins.append(info)
            return
        if verdict:
            info.error = verdict
            self.plugins.append(info)
            return

        def load():
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
            return module

        module = self._import_bounded(load, info, cleanup=lambda: sys.modules.pop(name, None))
        if module is not None:
            self._register(module, info)

    # -- calling hooks one plugin at a time, so one raising or slow plugin hides nothing ---
    def hook_impls(self, hook_name: str):
        """A hook's implementations in load order (builtins first), without plugins that overran."""
        hook = getattr(self.pm.hook, hook_name)
        order = {p.name: i for i, p in enumerate(self.plugins)}
        impls = sorted(hook.get_hookimpls(), key=lambda impl: order.get(impl.plugin_name, len(order)))
        return [impl for impl in impls if impl.plugin_name not in self.slow]

    def _call(self, hook_name: str, calls, budget: float):
        """call_all over (impl, kwargs) pairs; a plugin that overruns is marked slow. Yields
        (plugin name, ok, result or exception)."""
        results = call_all([(impl.plugin_name, impl.function, kwargs) for impl, kwargs in calls], budget,
                           name=hook_name)
        for name, ok, value in results:
            if isinstance(value, HookTimeout):
                self.slow[name] = f"{hook_name} took longer than {budget:g} s"
                value = HookTimeout(f"{hook_name} took longer than {budget:g} s; this plugin is skipped "
                                    "from now on (a sleep, a network call or a subprocess without a timeout?)")
            yield name, ok, value

    def call_each(self, hook_name: str, *, budget: float = HOOK_BUDGET, **kwargs):
        """Call a hook on every plugin separately, side by side, within `budget` seconds in all;
        yield (plugin name, result or exception) in load order. An overrun yields HookTimeout."""
        calls = [(impl, {k: kwargs[k] for k in impl.argnames}) for impl in self.hook_impls(hook_name)]
        for name, _ok, value in self._call(hook_name, calls, budget):
            yield name, value

    def info(self, name: str) -> PluginInfo | None:
        return next((p for p in self.plugins if p.name == name), None)

    def broken(self) -> list[tuple[str, str]]:
        """(plugin, why) for every plugin that did not load, or overran a budget."""
        out = [(p.name, p.error) for p in self.plugins if p.error]
        out += [(name, why) for name, why in self.slow.items() if not any(n == name for n, _ in out)]
        return out

    def checks(self):
        """Every Check the plugins register, plus (check-less) errors of plugins that raised."""
        from lora_doctor.model import Check

        checks: list[Check] = []
        errors: list[tuple[str, str]] = []
        calls, collected = [], {}
        for impl in self.hook_impls("lora_doctor_register_checks"):
            mine: list[Check] = []
            collected[impl.plugin_name] = mine

            def register(check, _collected=mine, _name=impl.plugin_name):
                if not isinstance(check, Check):
                    raise TypeError(f"register() takes a lora_doctor.Check, not {type(check).__name__}")
                _collected.append(check if check.plugin else _with_plugin(check, _name))

            calls.append((impl, {"register": register}))
        for name, ok, value in list(self._call("lora_doctor_register_checks", calls, HOOK_BUDGET)):
            got = list(collected[name])  # what a plugin registers after its deadline is ignored
            if not ok:
                errors.append((name, describe(value)))
                if isinstance(value, HookTimeout):
                    got = []
            checks.extend(got)
            info = self.info(name)
            if info is not None:
                info.checks = [c.id for c in got]
        return checks, errors

    def signature_sources(self) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
        """(path, plugin) pairs of signature files/folders, builtins first (a user file cannot
        take a builtin's id), and errors of plugins that raised."""
        registered: dict[str, list[tuple[Path, str]]] = {}
        errors: list[tuple[str, str]] = []
        calls = []
        for impl in self.hook_impls("lora_doctor_register_signatures"):
            mine: list[tuple[Path, str]] = []
            registered[impl.plugin_name] = mine

            def register(path, _mine=mine, _name=impl.plugin_name):
                _mine.append((path if hasattr(path, "is_dir") else Path(path), _name))

            calls.append((impl, {"register": register}))
        builtin, external = [], []
        for name, ok, value in list(self._call("lora_doctor_register_signatures", calls, HOOK_BUDGET)):
            if not ok:
                errors.append((name, describe(value)))
                if isinstance(value, HookTimeout):
                    continue
            info = self.info(name)
            (builtin if info is not None and info.source == "builtin" else external).extend(registered[name])
        return builtin + external + list(self.signature_files), errors

    def watch_line(self, line: str, context, deliver) -> None:
        """Offer one line of live output to every plugin's lora_doctor_watch_line, off the caller's
        thread (host/watch.py): returns at once; hints arrive through `deliver(text)`."""
        if self._watch is None:
            from lora_doctor.host.watch import Watchers

            self._watch = Watchers(self, context, deliver, budget=WATCH_BUDGET)
        self._watch.offer(line)

    def finish_watching(self, timeout: float = 1.0) -> None:
        """Let the watchers see the lines already offered (at most `timeout` seconds), then stop them."""
        if self._watch is not None:
            self._watch.close(timeout)


def _module_name(path: Path) -> str:
    return f"lora_doctor_user_plugin_{path.stem}"


def _with_plugin(check, name):
    from dataclasses import replace

    return replace(check, plugin=name)
