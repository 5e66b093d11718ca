"""Parse a training command line into the launcher, the script and the script's options."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .options_table import OptionSpec, load_options

# accelerate launch options that take no value (everything else starting with -- takes one).
ACCELERATE_FLAGS = {
    "--cpu", "--multi_gpu", "--tpu", "--ipex", "--mps", "--use_deepspeed", "--use_fsdp",
    "--use_megatron_lm", "--use_xpu", "--quiet", "-q", "--debug", "--monitor_interval",
    "--same_network", "--rdzv_conf", "--module", "-m", "--no_python", "--dynamo_use_fullgraph",
    "--dynamo_use_dynamic", "--enable_cpu_affinity", "--tpu_use_cluster", "--tpu_use_sudo",
}
# torchrun / python options that take a value.
TORCHRUN_VALUED = {"--nproc_per_node", "--nproc-per-node", "--nnodes", "--node_rank", "--node-rank",
                   "--master_addr", "--master-addr", "--master_port", "--master-port", "--rdzv_backend",
                   "--rdzv-backend", "--rdzv_endpoint", "--rdzv-endpoint", "--rdzv_id", "--rdzv-id",
                   "--max_restarts", "--max-restarts", "--log_dir", "--log-dir", "--redirects", "-r",
                   "--tee", "-t", "--role", "--local_addr", "--local-addr"}


@dataclass
class Launch:
    """A parsed training command.

    `launcher` is "accelerate", "python", "torchrun" or "script"; `python` the interpreter the
    command names (a path or a name on PATH) when it names one; `script` the training script as
    written; `script_args` the raw arguments after it; `options` the parsed script options
    (name without "--" -> value: True for flags, a list for nargs options, else a str).
    """

    argv: list[str]
    launcher: str
    script: str | None
    launcher_args: list[str] = field(default_factory=list)
    script_args: list[str] = field(default_factory=list)
    python: str | None = None
    options: dict[str, object] = field(default_factory=dict)
    positionals: list[str] = field(default_factory=list)  # stray tokens argparse would reject

    @property
    def script_name(self) -> str:
        """The script's stem, e.g. 'train_network' (the options table's key)."""
        return Path(self.script).stem if self.script else ""

    def launcher_option(self, name: str) -> str | None:
        """The value of a launcher option such as --mixed_precision, or None."""
        args = self.launcher_args
        for i, tok in enumerate(args):
            if tok == name and i + 1 < len(args):
                return args[i + 1]
            if tok.startswith(name + "="):
                return tok.split("=", 1)[1]
        return None


def _is_python(token: str) -> bool:
    name = os.path.basename(token).lower()
    for suffix in (".exe",):
        name = name.removesuffix(suffix)
    return name.startswith("python") or name == "py"


def _split_launcher(argv: list[str], valued: set[str] | None, flags: set[str]) -> tuple[list[str], int]:
    """Launcher options up to the first positional; returns (options, index of the script)."""
    i = 0
    out: list[str] = []
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("-") or tok == "-":
            break
        out.append(tok)
        takes_value = "=" not in tok and (tok in valued if valued is not None else tok not in flags)
        if takes_value and i + 1 < len(argv):
            out.append(argv[i + 1])
            i += 1
        i += 1
    return out, i


def parse_command(argv: list[str]) -> Launch:
    """Recognise `accelerate launch …`, `python [-m accelerate.commands.launch] …`, `torchrun …`,
    `script.py …`; raise ValueError with a one-line reason when the command is empty."""
    if not argv:
        raise ValueError("no command given after '--'")
    first = os.path.basename(argv[0]).lower().removesuffix(".exe")
    rest = argv[1:]
    python = None
    if first in ("accelerate", "accelerate-launch"):
        if first == "accelerate":
            if not rest or rest[0] != "launch":
                return Launch(argv, "accelerate", None)
            rest = rest[1:]
        launcher = "accelerate"
        largs, idx = _split_launcher(rest, None, ACCELERATE_FLAGS)
    elif first == "torchrun":
        launcher = "torchrun"
        largs, idx = _split_launcher(rest, TORCHRUN_VALUED, set())
    elif _is_python(argv[0]):
        python = argv[0]
        largs, idx = _split_launcher(rest, {"-X", "-W"}, set())
        if largs and largs[-1] == "-m":
            # python -m accelerate.commands.launch … / python -m torch.distributed.run …
            module = rest[idx] if idx < len(rest) else ""
            inner = {"accelerate": "accelerate-launch", "torch": "torchrun"}.get(module.split(".")[0])
            if inner is None:
                return Launch(argv, "python", None, largs, python=python)
            sub = parse_command([inner, *rest[idx + 1:]])
            sub.argv, sub.python = argv, python
            return sub
        launcher = "python"
    else:
        launcher, largs, idx, rest = "script", [], 0, argv
    if idx >= len(rest):
        return Launch(argv, launcher, None, largs, python=python)
    script = rest[idx]
    script_args = rest[idx + 1:]
    options, positionals = parse_script_options(script_args, Path(script).stem)
    return Launch(argv, launcher, script, largs, script_args, python, options, positionals)


def parse_script_options(args: list[str], script: str = "") -> tuple[dict[str, object], list[str]]:
    """Parse sd-scripts options the way argparse would (exact names; see sdscripts_args for
    abbreviations). Returns (options, stray positional tokens)."""
    table: dict[str, OptionSpec] = load_options()
    options: dict[str, object] = {}
    positionals: list[str] = []
    i = 0
    while i < len(args):
        tok = args[i]
        if not tok.startswith("--") or tok == "--":
            positionals.append(tok)
            i += 1
            continue
        name, eq, value = tok[2:].partition("=")
        spec = table.get(name)
        if eq:
            options[name] = [value] if spec is not None and spec.is_list else value
        elif spec is not None and spec.is_flag:
            options[name] = True
        elif spec is not None and spec.is_list:
            values = []
            while i + 1 < len(args) and not args[i + 1].startswith("--"):
                values.append(args[i + 1])
                i += 1
            options[name] = values
        elif i + 1 < len(args) and not args[i + 1].startswith("--"):
            options[name] = args[i + 1]
            i += 1
        else:
            options[name] = True
        i += 1
    return options, positionals
