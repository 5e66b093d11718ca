"""accelerate's config: the file `accelerate launch` reads, and the keys the target's accelerate accepts,
read from its source with `ast` (never imported: importing accelerate imports torch). accelerate rejects
keys that are not fields of its config dataclass."""

from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path

from lora_doctor.subproc import run_bounded

MARKER = "@@ACCELERATE@@"
FIND = ("import importlib.util as u, sys; s = u.find_spec('accelerate'); "
        f"sys.stdout.write('{MARKER}' + ((s.origin or '') if s else ''))")
# Keys accelerate converts before comparing (legacy spellings it still reads).
LEGACY = {"fp16", "dynamo_backend"}


def config_file(ctx) -> tuple[Path, bool]:
    """(the config file `accelerate launch` reads, whether the command named it with --config_file):
    its --config_file, else <HF_HOME>/accelerate/default_config.yaml."""
    from lora_doctor.launch.command import resolve_path
    from lora_doctor.hub.token import hf_paths

    launch = ctx.launch
    explicit = launch.launcher_option("--config_file") if launch and launch.launcher == "accelerate" else None
    if explicit:
        return resolve_path(explicit, ctx.cwd), True
    return hf_paths(ctx.env).hf_home / "accelerate" / "default_config.yaml", False


@lru_cache(maxsize=8)
def package_dir(python: str, timeout: float = 15.0) -> Path | None:
    """The folder of the target's accelerate package (found without importing it), or None."""
    got = run_bounded([python, "-c", FIND], timeout)
    out = got.stdout.decode("utf-8", "replace")
    _, sep, origin = out.rpartition(MARKER)
    origin = origin.strip()
    return Path(origin).parent if sep and origin else None


def config_fields(source: Path) -> dict[str, set[str]]:
    """class name -> every annotated field, inherited ones included, of the classes in `source`."""
    tree = ast.parse(source.read_text("utf-8"))
    own: dict[str, set[str]] = {}
    bases: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            own[node.name] = {s.target.id for s in node.body
                              if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}
            bases[node.name] = [b.id for b in node.bases if isinstance(b, ast.Name)]

    def collect(name: str, seen=()) -> set[str]:
        fields = set(own.get(name, ()))
        for base in bases.get(name, ()):
            if base not in seen:
                fields |= collect(base, (*seen, name))
        return fields

    return {name: collect(name) for name in own}


def accepted_keys(python: str, compute_environment: str) -> tuple[set[str] | None, str]:
    """(keys the target's accelerate accepts for this environment, where they were read) or (None, why)."""
    folder = package_dir(python)
    if folder is None:
        return None, "accelerate is not installed in the target"
    source = folder / "commands" / "config" / "config_args.py"
    try:
        classes = config_fields(source)
    except (OSError, SyntaxError, ValueError) as exc:
        return None, f"cannot read {source}: {exc}"
    cls = "SageMakerConfig" if compute_environment == "AMAZON_SAGEMAKER" else "ClusterConfig"
    if not classes.get(cls):
        return None, f"{source} has no {cls}"
    return classes[cls] | LEGACY, str(source)
