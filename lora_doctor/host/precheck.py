"""Import an external plugin in a throw-away interpreter before importing it here.

Importing runs the plugin's top-level code, and some of what that code can do cannot be undone
or caught in-process: `os._exit(0)`, a segfault, `os.kill(os.getpid(), …)`, an endless sleep.
So a plugin file (or entry point) is first imported in a subprocess with a time limit; only one
whose import returns (or raises: the real import then reports the exception) is imported here.
The verdict is cached per file (path, size, mtime) or per entry point (distribution and version,
module file's mtime), so a plugin costs one subprocess when it is new or changed, none after.
Editing or touching a file checks it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lora_doctor.subproc import run_bounded

CACHE_NAME = "plugin-imports.json"
CACHE_LIMIT = 500  # entries kept

# Runs in the throw-away interpreter: the request arrives on stdin (never in argv, where the plugin
# could read the nonce); the plugin's prints go to stderr; the verdict goes to the saved stdout.
_CHILD = r"""
import json, os, sys
req = json.loads(sys.stdin.readline())
sys.path[:] = req["path"]
out = os.dup(1)
os.dup2(2, 1)
verdict = "ok"
try:
    if req["kind"] == "file":
        import importlib.util
        spec = importlib.util.spec_from_file_location(req["module"], req["target"])
        module = importlib.util.module_from_spec(spec)
        sys.modules[req["module"]] = module
        spec.loader.exec_module(module)
    else:
        from importlib.metadata import entry_points
        for ep in entry_points(group=req["group"]):
            if ep.name == req["name"] and ep.value == req["target"]:
                ep.load()
                break
except BaseException:
    verdict = "raised"
os.write(out, (req["nonce"] + ":" + verdict + "\n").encode())
os._exit(0)
"""


@dataclass(frozen=True)
class Target:
    """One external plugin to pre-check: a folder file, or an entry point."""

    kind: str  # "file" or "entry point"
    target: str  # the file's path, or the entry point's value ("pkg.mod:attr")
    module: str = ""  # the module name a file is imported as
    group: str = ""
    name: str = ""
    stamp: str = ""  # what changes when the plugin changes

    @property
    def key(self) -> str:
        raw = f"{self.kind}|{self.target}|{self.group}|{self.name}|{self.stamp}|{sys.version}"
        return hashlib.sha256(raw.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def file_target(path: Path, module: str) -> Target:
    try:
        st = path.stat()
        stamp = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        stamp = ""
    return Target("file", str(path), module=module, stamp=stamp)


def entry_point_target(ep) -> Target:
    dist = getattr(ep, "dist", None)
    stamp = f"{getattr(dist, 'name', '')}=={getattr(dist, 'version', '')}"
    top = ep.value.split(":")[0].split(".")[0].strip()
    try:
        import importlib.util

        spec = importlib.util.find_spec(top)  # a top-level name: found, not executed
        origin = getattr(spec, "origin", None)
        if origin and os.path.exists(origin):
            stamp += f":{os.stat(origin).st_mtime_ns}"
    except (ImportError, ValueError, OSError):
        pass
    return Target("entry point", ep.value, group=ep.group, name=ep.name, stamp=stamp)


def cache_path() -> Path:
    home = os.environ.get("LORA_DOCTOR_HOME")
    if home:
        return Path(os.path.expanduser(home)) / CACHE_NAME
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("lora-doctor", appauthor=False)) / CACHE_NAME


_lock = threading.Lock()


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text("utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(path: Path, data: dict) -> None:
    if len(data) > CACHE_LIMIT:
        data = dict(list(data.items())[-CACHE_LIMIT:])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data), "utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: the check simply runs again next time


def check_one(target: Target, budget: float) -> str:
    """'' when importing `target` returns (or raises) within `budget` seconds in a subprocess,
    else why it must not be imported here."""
    nonce = secrets.token_hex(16)
    request = json.dumps({"kind": "file" if target.kind == "file" else "ep", "target": target.target,
                          "module": target.module, "group": target.group, "name": target.name,
                          "nonce": nonce, "path": sys.path})
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    got = run_bounded([sys.executable, "-c", _CHILD], budget, env=env, stdin=(request + "\n").encode())
    if got.error:
        return ""  # cannot start a second interpreter here (a frozen app): import it directly, guarded
    if f"{nonce}:".encode() in got.stdout:
        return ""
    if got.timed_out:
        return f"importing it takes longer than {budget:g} s (a sleep or a network call at import?); not loaded"
    last = [ln for ln in got.stderr.decode("utf-8", "replace").splitlines() if ln.strip()][-1:]
    how = f"exit code {got.returncode}" if got.returncode is not None and got.returncode >= 0 else \
        f"killed by signal {-got.returncode}" if got.returncode is not None else "it died"
    return (f"importing it ends the process ({how}: os._exit(), sys.exit() outside a function, or a crash)"
            + (f": {last[0][:200]}" if last else "") + "; not loaded")


def precheck(targets: list[Target], budget: float) -> dict[Target, str]:
    """Verdicts for every target ('' = safe to import here), from the cache or a subprocess each
    (run side by side, so N new plugins cost about one budget, not N)."""
    if not targets:
        return {}
    path = cache_path()
    with _lock:
        cache = _read_cache(path)
    verdicts = {t: cache[t.key] for t in targets if isinstance(cache.get(t.key), str)}
    todo = [t for t in targets if t not in verdicts]
    if todo:
        with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
            for t, verdict in zip(todo, pool.map(lambda t: check_one(t, budget), todo)):
                verdicts[t] = verdict
        with _lock:
            cache = _read_cache(path)
            for t in todo:
                cache.pop(t.key, None)
                cache[t.key] = verdicts[t]
            _write_cache(path, cache)
    return verdicts
