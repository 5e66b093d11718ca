"""Builtin plugin: accelerate's config file (default_config.yaml or --config_file) against this machine."""

from __future__ import annotations

from pathlib import Path

from lora_doctor.hookspecs import hookimpl
from lora_doctor.model import Check, Finding, Severity

MULTI = {"MULTI_GPU", "MULTI_XPU", "MULTI_NPU", "MULTI_MLU", "MULTI_SDAA", "MULTI_MUSA", "MULTI_HPU",
         "DEEPSPEED", "FSDP", "MEGATRON_LM"}
DEFAULT_CMD = "accelerate config default"


def launcher_value(ctx, name: str):
    """An `accelerate launch` option that overrides the config (None when not given)."""
    if not ctx.launch or ctx.launch.launcher != "accelerate":
        return None
    if name in ("--multi_gpu", "--cpu"):
        return True if name in ctx.launch.launcher_args else None
    return ctx.launch.launcher_option(name)


def check_accelerate_config(ctx):
    """Find and read accelerate's config; compare it with the GPUs, the OS and the installed accelerate."""
    if ctx.launch is not None and ctx.launch.launcher != "accelerate":
        yield Finding(Severity.OK, f"launched with {ctx.launch.launcher}, not `accelerate launch`: "
                      "accelerate's config file is not used")
        return
    from lora_doctor.launch.accelerate_config import config_file

    path, explicit = config_file(ctx)
    if not path.exists():
        if explicit:
            yield Finding(Severity.ERROR, f"accelerate --config_file {path} does not exist",
                          detail=f"working directory: {ctx.cwd}",
                          fix="Fix the path after --config_file, or drop it to use the default config.")
        else:
            yield from no_config(ctx, path)
        return
    try:
        text = path.read_text("utf-8")
    except PermissionError:
        yield Finding(Severity.ERROR, f"cannot read the accelerate config {path} (permission denied)",
                      detail="Files written by a setup run as Administrator/root are not readable by the user.",
                      fix=f"Delete {path} as that user (or fix its owner), then run `{DEFAULT_CMD}` as yourself.",
                      cause="os.files_created_as_admin")
        return
    except OSError as exc:
        yield Finding(Severity.ERROR, f"cannot read the accelerate config {path}: {exc.strerror or exc}",
                      fix=f"Delete it and run `{DEFAULT_CMD}`.")
        return
    try:
        config = load_config(path, text)
    except ValueError as exc:
        yield Finding(Severity.ERROR, f"the accelerate config {path} is not valid: {exc}",
                      fix=f"Fix the file, or move it away and run `{DEFAULT_CMD}`.")
        return
    if not isinstance(config, dict):
        yield Finding(Severity.ERROR, f"the accelerate config {path} is empty or not a key: value map",
                      fix=f"Move it away and run `{DEFAULT_CMD}`.")
        return
    yield from judge(ctx, path, config)


def load_config(path: Path, text: str):
    """The config as accelerate reads it (accelerate/commands/config/config_args.py, `load_config_from_file`):
    JSON for a .json file, else PyYAML's `yaml.safe_load`. Raises ValueError with the parser's message."""
    if path.suffix.lower() == ".json":
        import json

        return json.loads(text)
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(" ".join(str(exc).split())) from None


def default_command(ctx) -> str:
    """`accelerate config default` with the training environment's own accelerate (its path, when it is
    beside the training Python: the venv need not be activated), else as typed on PATH."""
    from lora_doctor.target.find import shell_python

    if ctx.found_training_python:
        folder = Path(ctx.python).parent
        for name in ("accelerate", "accelerate.exe"):
            if (folder / name).is_file():
                windows = (ctx.facts.get().get("python") or {}).get("platform") == "win32" or name.endswith(".exe")
                return f"{shell_python(str(folder / name), 'win32' if windows else None)} config default"
    return DEFAULT_CMD


def no_config(ctx, path: Path):
    gpus = visible_gpus(ctx)
    if gpus is not None and gpus > 1 and not launcher_value(ctx, "--num_processes"):
        yield Finding(Severity.WARN, f"no accelerate config ({path}): with {gpus} GPUs, accelerate launch "
                      "starts one training process per GPU (multi-GPU)",
                      fix="Write a single-GPU config, or pass --num_processes 1 to accelerate launch.",
                      fix_command=default_command(ctx))
        return
    yield Finding(Severity.INFO, f"no accelerate config ({path}): accelerate launch uses its defaults "
                  "and prints a warning about them",
                  fix="Write the default config once (non-interactive).", fix_command=default_command(ctx))


def visible_gpus(ctx) -> int | None:
    """CUDA devices the target's torch sees (CUDA_VISIBLE_DEVICES applied), None when unknown."""
    torch = ctx.facts.get().get("torch") or {}
    if not torch.get("imported"):
        return None
    return len(torch.get("devices") or []) if torch.get("cuda_available") else 0


def judge(ctx, path: Path, config: dict):
    from lora_doctor.launch.accelerate_config import accepted_keys

    facts = {"path": str(path)}
    dist = str(config.get("distributed_type") or "")
    if "distributed_type" not in config:
        yield Finding(Severity.ERROR, f"the accelerate config {path} has no distributed_type",
                      detail="accelerate launch stops with 'A `distributed_type` must be specified in the config file.'",
                      fix=f"Add `distributed_type: 'NO'` for one GPU, or move the file away and run `{DEFAULT_CMD}`.",
                      facts=facts)
    keys, where = accepted_keys(ctx.python, str(config.get("compute_environment") or "LOCAL_MACHINE"))
    if keys is not None:
        unknown = sorted(k for k in config if str(k) not in keys)
        if unknown:
            version = (ctx.facts.get().get("packages") or {}).get("accelerate") or "?"
            yield Finding(Severity.ERROR, f"the accelerate config has keys accelerate {version} does not know: "
                          + ", ".join(map(str, unknown)),
                          detail=f"{path} was probably written by another accelerate version; accelerate launch "
                                 "stops with 'had unknown keys'.",
                          fix=f"Delete those lines from {path} (or move the file away and run `{DEFAULT_CMD}`).",
                          cause="versions.accelerate_config_incompatible", facts={**facts, "keys from": where})
    gpus = visible_gpus(ctx)
    procs = launcher_value(ctx, "--num_processes") or config.get("num_processes")
    machines = launcher_value(ctx, "--num_machines") or config.get("num_machines") or 1
    try:
        procs, machines = int(procs) if procs is not None else 1, int(machines)
    except (TypeError, ValueError):
        procs, machines = 1, 1
    multi = dist in MULTI or bool(launcher_value(ctx, "--multi_gpu")) or procs > 1
    windows = (ctx.facts.get().get("python") or {}).get("platform") == "win32"
    single = f"set distributed_type: 'NO' and num_processes: 1 in {path}"
    if procs == -1:
        yield Finding(Severity.ERROR, "the accelerate config says num_processes: -1",
                      detail="accelerate launch then stops: 'You need to manually pass in `--num_processes`'.",
                      fix=f"Set num_processes to the number of GPUs to use (1 for one GPU) in {path}.", facts=facts)
    if multi and windows:
        yield Finding(Severity.ERROR, f"multi-GPU accelerate config ({dist or 'num_processes ' + str(procs)}) on Windows",
                      detail="PyTorch ships no NCCL on Windows: 'Distributed package doesn't have NCCL built in' "
                             "(or a libuv TCPStore error).",
                      fix=f"Train on one GPU: {single} (or set USE_LIBUV=0 for a libuv error).",
                      cause="distributed.windows_multigpu_nccl", facts=facts)
    elif multi and gpus is not None and procs > max(gpus, 1) and not config.get("use_cpu"):
        yield Finding(Severity.ERROR, f"the accelerate config starts {procs} processes ({dist or 'multi-GPU'}) "
                      f"but {gpus} GPU(s) are visible",
                      fix=f"For one GPU, {single}; or pass --num_processes {max(gpus, 1)} to accelerate launch.",
                      facts=facts)
    elif dist in MULTI and gpus is not None and gpus <= 1 and procs <= 1:
        yield Finding(Severity.ERROR, f"the accelerate config is {dist} but only {gpus} GPU is visible",
                      detail="accelerate launch refuses multi-GPU with fewer than two processes/GPU ids.",
                      fix=f"For one GPU, {single}.", facts=facts)
    if machines > 1:
        ip = config.get("main_process_ip") or "?"
        yield Finding(Severity.ERROR if (gpus or 0) <= 1 else Severity.WARN,
                      f"the accelerate config is multi-node (num_machines: {machines})",
                      detail=f"accelerate launch waits for {machines} machines to meet at {ip}:"
                             f"{config.get('main_process_port') or '?'}; alone, it hangs.",
                      fix=f"For training on this machine, set num_machines: 1 in {path}.", facts=facts)
    yield from gpu_ids(ctx, config, gpus, path)
    yield from precision(ctx, config, path)
    if dist and dist not in MULTI and not multi and machines <= 1:
        yield Finding(Severity.OK, f"{path}: {dist}, {procs} process" + ("es" if procs != 1 else ""), facts=facts)


def gpu_ids(ctx, config: dict, gpus: int | None, path: Path):
    ids = config.get("gpu_ids")
    if gpus is None or ids in (None, "all", "") or isinstance(ids, bool):
        return
    try:
        wanted = [int(x) for x in str(ids).replace(" ", "").split(",") if x]
    except ValueError:
        return
    bad = [i for i in wanted if i >= gpus]
    if bad:
        yield Finding(Severity.ERROR, f"the accelerate config uses gpu_ids {ids}, but only {gpus} GPU(s) are visible",
                      fix=f"Set gpu_ids: all (or 0) in {path}.", facts={"path": str(path)})


def precision(ctx, config: dict, path: Path):
    """sd-scripts passes its own --mixed_precision (default 'no') to Accelerator: the config's is ignored."""
    value = config.get("mixed_precision")
    value = "no" if value in (None, False) else str(value)
    script = ctx.option("mixed_precision")
    if value == "no":
        return
    if ctx.launch is None or not ctx.launch.script:
        yield Finding(Severity.INFO, f"mixed_precision: {value} in the accelerate config; sd-scripts ignores it "
                      "(its own --mixed_precision, default 'no', wins)", facts={"path": str(path)})
    elif not script:
        yield Finding(Severity.WARN, f"the accelerate config says mixed_precision: {value}, but sd-scripts ignores it "
                      "and trains in fp32 (slower, more memory) unless the script gets --mixed_precision",
                      fix=f"Add --mixed_precision {value} to the training options (after the script name).",
                      facts={"path": str(path)})


@hookimpl
def lora_doctor_register_checks(register):
    """accelerate's config file: found, readable, keys known, fits the GPUs and the OS (accelerate.config)."""
    register(Check(id="accelerate.config", title="accelerate config", run=check_accelerate_config, timeout=20.0))
