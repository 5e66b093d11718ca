"""Find, load and isolate plugins: builtins, the `lora_doctor` entry points, plugin folders."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pluggy

from lora_doctor import hookspecs

ENTRY_POINT_GROUP = "lora_doctor"
PLUGIN_PATH_ENV = "LORA_DOCTOR_PLUGIN_PATH"

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


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()


class PluginHost:
    """The pluggy manager plus what was loaded, from where, and what broke."""

    def __init__(self, extra_dirs=(), *, builtins=BUILTIN_PLUGINS, entry_points: bool = True):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: list[PluginInfo] = []
        self.signature_files: list[tuple[Path, str]] = []  # (path, plugin name)
        for name in builtins:
            self._load_module(name, "builtin")
        if entry_points:
            self._load_entry_points()
        for folder in plugin_dirs(list(extra_dirs)):
            self._load_folder(folder)
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
                    self.plugins.append(PluginInfo("hook validation", "host", error=_describe(exc)))
                    return
                info.error = f"unknown hook: {exc} (a misspelled hook name?)"
                self.pm.unregister(exc.plugin)

    # -- loading -------------------------------------------------------------------------
    def _register(self, module, info: PluginInfo) -> None:
        try:
            self.pm.register(module, name=info.name)
        except Exception as exc:  # a bad hookimpl signature, a duplicate name …
            info.error = _describe(exc)
        self.plugins.append(info)

    def _load_module(self, name: str, source: str) -> None:
        try:
            module = importlib.import_module(name)
        except Exception as exc:
            self.plugins.append(PluginInfo(name, source, name, error=_describe(exc)))
            return
        self._register(module, PluginInfo(name, source, getattr(module, "__file__", "") or name))

    def _load_entry_points(self) -> None:
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            info = PluginInfo(ep.name, "entry point", ep.value)
            try:
                module = ep.load()
            except Exception as exc:
                info.error = _describe(exc)
                self.plugins.append(info)
                continue
            self._register(module, info)

    def _load_folder(self, folder: Path) -> None:
        try:
            entries = sorted(folder.iterdir())
        except OSError:
            return  # a folder that does not exist is simply empty
        for path in entries:
            if path.suffix == ".toml":
                self.signature_files.append((path, f"folder:{folder}"))
            elif path.suffix == ".py" and not path.name.startswith("_"):
                self._load_file(path)

    def _load_file(self, path: Path) -> None:
        name = f"lora_doctor_user_plugin_{path.stem}"
        info = PluginInfo(path.stem, "folder", str(path))
        earlier = self.info(path.stem)
        if earlier is not None:
            info.error = f"a plugin named {path.stem} is already loaded from {earlier.location}; rename one of them"
            self.plugins.append(info)
            return
        try:
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        except BaseException as exc:  # SystemExit/KeyboardInterrupt from plugin import code, too
            sys.modules.pop(name, None)
            if isinstance(exc, KeyboardInterrupt):
                raise
            info.error = _describe(exc)
            self.plugins.append(info)
            return
        self._register(module, info)

    # -- calling hooks one plugin at a time, so one raising plugin hides nothing ----------
    def call_each(self, hook_name: str, **kwargs):
        """Call a hook on every plugin separately; yield (plugin name, result or exception)."""
        hook = getattr(self.pm.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):
            try:
                yield impl.plugin_name, impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as exc:
                yield impl.plugin_name, exc

    def _in_load_order(self, hook):
        """Hook implementations in the order their plugins were loaded (builtins first)."""
        order = {p.name: i for i, p in enumerate(self.plugins)}
        return sorted(hook.get_hookimpls(), key=lambda impl: order.get(impl.plugin_name, len(order)))

    def info(self, name: str) -> PluginInfo | None:
        return next((p for p in self.plugins if p.name == name), None)

    def checks(self):
        """Every Check the plugins register, plus (check-less) errors of plugins that raised."""
        from lora_doctor.model import Check

        checks: list[Check] = []
        errors: list[tuple[str, str]] = []
        hook = self.pm.hook.lora_doctor_register_checks
        for impl in self._in_load_order(hook):
            collected: list[Check] = []

            def register(check, _collected=collected, _name=impl.plugin_name):
                if not isinstance(check, Check):
                    raise TypeError(f"register() takes a lora_doctor.model.Check, not {type(check).__name__}")
                _collected.append(check if check.plugin else _with_plugin(check, _name))

            try:
                impl.function(register=register)
            except Exception as exc:
                errors.append((impl.plugin_name, _describe(exc)))
            checks.extend(collected)
            info = self.info(impl.plugin_name)
            if info is not None:
                info.checks = [c.id for c in collected]
        return checks, errors

    def signature_sources(self) -> tuple[list[tuple[Path, str]], list[tuple[str, str]]]:
        """(path, plugin) pairs of signature files/folders, and errors of plugins that raised."""
        sources = list(self.signature_files)
        errors: list[tuple[str, str]] = []
        hook = self.pm.hook.lora_doctor_register_signatures
        for impl in reversed(hook.get_hookimpls()):
            def register(path, _name=impl.plugin_name):
                sources.append((Path(path), _name))

            try:
                impl.function(register=register)
            except Exception as exc:
                errors.append((impl.plugin_name, _describe(exc)))
        return sources, errors


def _with_plugin(check, name):
    from dataclasses import replace

    return replace(check, plugin=name)
