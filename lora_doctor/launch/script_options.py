"""The options a training script accepts: read statically from the user's sd-scripts checkout
(the `add_argument` calls reachable from the script's `setup_parser`, by AST, nothing imported),
else the table shipped with the package."""

from __future__ import annotations

import ast
import re
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



# -- what the checkout's own sources say about its version ----------------------------------------

# sd-scripts v0.6.5 (library/train_util.py, DreamBoothSubset.__init__; later the other subsets too)
# prepends "." to a caption_extension written without one; older versions use it as written.
CAPTION_DOT_SINCE = "v0.6.5"
_CAPTION_DOT_RULE = re.compile(r"caption_extension\.startswith\(\s*[\"']\.[\"']\s*\)")


def adds_caption_dot(checkout: Path | None) -> bool | None:
    """True when the checkout adds a missing leading dot to caption_extension (v0.6.5 and later),
    False when its library/train_util.py has no such rule (older), None without a checkout to read."""
    if checkout is None:
        return None
    try:
        text = (Path(checkout) / "library" / "train_util.py").read_text("utf-8", "replace")
    except OSError:
        return None
    if _CAPTION_DOT_RULE.search(text):
        return True
    return False if "class DreamBoothSubset" in text or "def glob_images" in text else None


def _git_dir(checkout: Path) -> Path | None:
    git = checkout / ".git"
    if git.is_dir():
        return git
    try:  # a worktree or submodule: "gitdir: <path>"
        line = git.read_text("utf-8").strip()
    except OSError:
        return None
    if line.startswith("gitdir:"):
        path = Path(line[7:].strip())
        return path if path.is_absolute() else (checkout / path).resolve()
    return None


def checkout_version(checkout: Path | None) -> dict[str, str]:
    """The checkout's git commit, branch and tag (when HEAD is a tagged commit), read from .git
    without running git: {"commit": "0123abcd…", "branch": "main", "tag": "v0.9.1"}; {} without .git."""
    if checkout is None:
        return {}
    git = _git_dir(Path(checkout))
    if git is None:
        return {}
    common = git
    try:
        common_line = (git / "commondir").read_text("utf-8").strip()
        common = (git / common_line).resolve()
    except OSError:
        pass
    out: dict[str, str] = {}
    try:
        head = (git / "HEAD").read_text("utf-8").strip()
    except OSError:
        return {}
    refs: dict[str, str] = {}
    try:
        for line in (common / "packed-refs").read_text("utf-8").splitlines():
            parts = line.split()
            if len(parts) == 2 and not line.startswith(("#", "^")):
                refs[parts[1]] = parts[0]
            elif line.startswith("^") and refs:  # the commit an annotated tag points at
                last = list(refs)[-1]
                refs[last + "^{}"] = line[1:].strip()
    except OSError:
        pass
    for folder in (common / "refs" / "tags", common / "refs" / "heads"):
        try:
            for path in folder.rglob("*"):
                if path.is_file():
                    refs["refs/" + path.relative_to(common / "refs").as_posix()] = path.read_text("utf-8").strip()
        except OSError:
            pass
    if head.startswith("ref:"):
        ref = head[4:].strip()
        out["branch"] = ref.removeprefix("refs/heads/")
        commit = refs.get(ref, "")
        try:
            commit = (git / ref).read_text("utf-8").strip()
        except OSError:
            pass
    else:
        commit = head
    if commit:
        out["commit"] = commit
        tags = sorted({name.removeprefix("refs/tags/").removesuffix("^{}") for name, sha in refs.items()
                       if name.startswith("refs/tags/") and sha == commit})
        if tags:
            out["tag"] = tags[-1]
    return out
