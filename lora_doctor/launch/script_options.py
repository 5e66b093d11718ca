"""The options a training script accepts: read statically from the user's sd-scripts checkout
(the `add_argument` calls reachable from the script's `setup_parser`, by AST, nothing imported),
else the table shipped with the package."""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

from lora_doctor.launch.options_table import OptionSpec, load_options, options_for_script

MAX_DEPTH = 6
MIN_OPTIONS = 10  # fewer found statically means we did not understand the script: use the table


def accepted_options(script: str | None, checkout: Path | None, cwd: Path | None = None
                     ) -> tuple[dict[str, OptionSpec], str]:
    """(name -> OptionSpec, where the list came from) for the command's script."""
    name = Path(script).stem if script else ""
    if checkout is not None and script:
        path = Path(script)
        path = path if path.is_absolute() else (cwd or checkout) / path
        if not path.exists():
            path = checkout / Path(script).name
        if path.exists():
            try:
                found = _scan(str(path.resolve()), str(checkout.resolve()), path.stat().st_mtime)
            except (OSError, SyntaxError, ValueError, RecursionError):
                found = {}
            if len(found) >= MIN_OPTIONS:
                return found, f"{path} (read statically)"
    table = options_for_script(name)
    source = "the options table shipped with lora-doctor (sd-scripts v0.10.1)"
    if table is load_options() or len(table) == len(load_options()):
        source += f"; '{name}' is not a script it knows, so every known option is accepted"
    return table, source


class _Module:
    def __init__(self, path: Path):
        self.path = path
        self.tree = ast.parse(path.read_bytes(), filename=str(path))
        self.functions = {n.name: n for n in ast.walk(self.tree) if isinstance(n, ast.FunctionDef)}
        self.module_alias: dict[str, str] = {}  # name used in code -> module stem
        self.function_alias: dict[str, tuple[str, str]] = {}  # name -> (module stem, function)
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    self.module_alias[a.asname or a.name.split(".")[0]] = a.name.rsplit(".", 1)[-1]
            elif isinstance(node, ast.ImportFrom):
                for a in node.names:
                    stem = (node.module or "").rsplit(".", 1)[-1]
                    self.module_alias[a.asname or a.name] = a.name
                    self.function_alias[a.asname or a.name] = (stem, a.name)


def _literal(node):
    try:
        return ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None


def _spec_from_call(call: ast.Call, script: str) -> OptionSpec | None:
    names = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
    long = next((n for n in names if n.startswith("--")), None)
    if long is None:
        return None
    kw = {k.arg: k.value for k in call.keywords if k.arg}
    action = _literal(kw["action"]) if "action" in kw else None
    type_node = kw.get("type")
    type_name = (type_node.id if isinstance(type_node, ast.Name) else
                 type_node.attr if isinstance(type_node, ast.Attribute) else "str")
    if action in ("store_true", "store_false"):
        kind = f"flag ({action})"
    elif action in ("store_const", "count", "help", "version"):
        kind = f"flag ({action})"
    else:
        kind = type_name
        nargs = _literal(kw["nargs"]) if "nargs" in kw else None
        if nargs is not None:
            kind += f" nargs={nargs}"
    choices = _literal(kw["choices"]) if "choices" in kw else None
    choices = tuple("None" if c is None else str(c) for c in choices) if isinstance(choices, (list, tuple)) else ()
    default = repr(_literal(kw["default"])) if "default" in kw else "None"
    return OptionSpec(long[2:], kind, default, choices, (script,))


@lru_cache(maxsize=8)
def _scan(script_path: str, checkout: str, mtime: float) -> dict[str, OptionSpec]:
    script = Path(script_path)
    root = Path(checkout)
    modules: dict[str, _Module] = {}

    def module(stem: str) -> _Module | None:
        if stem not in modules:
            for candidate in (root / "library" / f"{stem}.py", root / f"{stem}.py"):
                if candidate.exists():
                    modules[stem] = _Module(candidate)
                    break
            else:
                modules[stem] = None
        return modules[stem]

    main = _Module(script)
    modules[script.stem] = main
    found: dict[str, OptionSpec] = {}
    seen: set[tuple[str, str]] = set()

    def visit(mod: _Module, func: ast.AST, depth: int) -> None:
        for node in ast.walk(func):
            if not isinstance(node, ast.Call):
                continue
            target = node.func
            if isinstance(target, ast.Attribute) and target.attr == "add_argument":
                spec = _spec_from_call(node, script.stem)
                if spec is not None:
                    found.setdefault(spec.name, spec)
                continue
            if depth >= MAX_DEPTH:
                continue
            callee_mod, name = None, None
            if isinstance(target, ast.Name):
                name = target.id
                if name in mod.functions:
                    callee_mod = mod
                elif name in mod.function_alias:  # from library.train_util import add_x
                    stem, name = mod.function_alias[name]
                    callee_mod = module(stem)
            elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                alias = target.value.id
                callee_mod, name = module(mod.module_alias.get(alias, alias)), target.attr
            if callee_mod is None or name not in callee_mod.functions:
                continue
            key = (str(callee_mod.path), name)
            if key in seen:
                continue
            seen.add(key)
            visit(callee_mod, callee_mod.functions[name], depth + 1)

    entry = main.functions.get("setup_parser")
    visit(main, entry if entry is not None else main.tree, 0)
    return found

