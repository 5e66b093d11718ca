"""Parse a training command line into the launcher, the script and the script's options."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from lora_doctor.launch.options_table import OptionSpec, load_options, options_for_script

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
    # Filled by parse_command: the command line's own options, the --config_file TOML's (flattened),
    # abbreviations argparse would expand (as written -> full name), ambiguous ones (as written ->
    # candidates), and the config file's resolved path and the reason it could not be read.
    cli_options: dict[str, object] = field(default_factory=dict)
    config_options: dict[str, object] = field(default_factory=dict)
    abbreviations: dict[str, str] = field(default_factory=dict)
    ambiguous: dict[str, list[str]] = field(default_factory=dict)
    config_file: str | None = None
    config_error: str | None = None

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
    name = os.path.basename(token).lower().removesuffix(".exe")
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


def parse_command(argv: list[str], cwd: str | os.PathLike | None = None) -> Launch:
    """Recognise `accelerate launch …`, `python [-m accelerate.commands.launch] …`, `torchrun …`,
    `script.py …`; raise ValueError with a one-line reason when the command is empty.

    The script's `--config_file` TOML (relative to `cwd`) is merged the way sd-scripts does:
    command line > config file > defaults; `options` holds the merged values."""
    if not argv or not argv[0].strip():
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
        if largs and largs[-1] == "-c":  # python -c CODE: no script file
            return Launch(argv, "python", None, largs, rest[idx:], python=python)
        if largs and largs[-1] == "-m":
            # python -m accelerate.commands.launch … / python -m torch.distributed.run …
            module = rest[idx] if idx < len(rest) else ""
            inner = {"accelerate": "accelerate-launch", "torch": "torchrun"}.get(module.split(".")[0])
            if inner is None:
                return Launch(argv, "python", None, largs, python=python)
            sub = parse_command([inner, *rest[idx + 1:]], cwd)
            sub.argv, sub.python = argv, python
            return sub
        launcher = "python"
    else:
        launcher, largs, idx, rest = "script", [], 0, argv
    if idx >= len(rest):
        return Launch(argv, launcher, None, largs, python=python)
    script = rest[idx]
    script_args = rest[idx + 1:]
    abbreviations: dict[str, str] = {}
    ambiguous: dict[str, list[str]] = {}
    options, positionals = parse_script_options(script_args, Path(script).stem,
                                                abbreviations=abbreviations, ambiguous=ambiguous)
    launch = Launch(argv, launcher, script, largs, script_args, python, dict(options), positionals,
                    cli_options=options, abbreviations=abbreviations, ambiguous=ambiguous)
    merge_config_file(launch, Path(cwd) if cwd is not None else Path.cwd())
    return launch


def flatten_config(data: dict) -> dict[str, object]:
    """sd-scripts' read_config_from_file: every table's keys merged, section names ignored."""
    flat: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten_config(value))
        else:
            flat[key] = value
    return flat


def resolve_path(value: str, cwd: Path) -> Path:
    """A path the command names: ~ and $VARS expanded, relative ones against the command's working directory."""
    path = Path(os.path.expandvars(os.path.expanduser(value)))
    return path if path.is_absolute() else cwd / path


def config_file_path(value: str, cwd: Path) -> Path:
    """The file sd-scripts reads for `--config_file value`: `.toml` appended when missing."""
    return resolve_path(value if value.endswith(".toml") else value + ".toml", cwd)


def merge_config_file(launch: Launch, cwd: Path) -> None:
    """Merge the script's --config_file into launch.options (command line wins)."""
    value = launch.cli_options.get("config_file")
    if not isinstance(value, str) or not value:
        return
    path = config_file_path(value, cwd)
    launch.config_file = str(path)
    from lora_doctor.tomlcompat import load

    try:
        with open(path, "rb") as fh:
            data = load(fh)
    except FileNotFoundError:
        launch.config_error = f"{path} not found"
        return
    except OSError as exc:
        launch.config_error = f"cannot read {path}: {exc.strerror or exc}"
        return
    except ValueError as exc:  # TOMLDecodeError, or bytes that are not UTF-8
        launch.config_error = f"{path} is not valid TOML: {exc}"
        return
    launch.config_options = flatten_config(data)
    launch.options = {**launch.config_options, **launch.cli_options}


def resolve_abbreviation(name: str, known) -> tuple[str | None, list[str]]:
    """argparse's allow_abbrev: (full name, []) for an exact or unique prefix, (None, candidates)
    for an ambiguous one, (None, []) for an unknown one."""
    if name in known:
        return name, []
    candidates = sorted(k for k in known if k.startswith(name))
    if len(candidates) == 1:
        return candidates[0], []
    return None, candidates


def parse_script_options(args: list[str], script: str = "", *, known: dict | None = None,
                         abbreviations: dict | None = None, ambiguous: dict | None = None
                         ) -> tuple[dict[str, object], list[str]]:
    """Parse sd-scripts options the way argparse would, expanding unique prefixes like argparse
    does (recorded in `abbreviations`). Returns (options, stray positional tokens)."""
    table: dict[str, OptionSpec] = load_options()
    known = known if known is not None else (options_for_script(script) if script else table)
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
        if name and name not in known:
            full, candidates = resolve_abbreviation(name, known)
            if full is not None:
                if abbreviations is not None:
                    abbreviations[name] = full
                name = full
            elif candidates and ambiguous is not None:
                ambiguous[name] = candidates
        spec = known.get(name) or table.get(name)
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
