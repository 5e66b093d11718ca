"""Step arithmetic (sd-scripts train_network.py, train), what the run will save (library/train_util.py, save_and_remove_state_*), and where it writes."""

from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from lora_doctor.dataset.scan import Scan, corrected_command, require, standalone
from lora_doctor.dataset.findings import bucket_settings, dataset_table, plan_for
from lora_doctor.dataset.layout import OptionError, opt_flag, opt_int
from lora_doctor.model import CheckSkipped, Finding, Severity

# LoRA parameters per unit of --network_dim (UNet + text encoder(s)), measured on saved files:
# an SD1.x dim-128 LoRA is ~144 MB in fp16, an SDXL dim-32 one ~218 MB. [estimate]
PARAMS_PER_RANK = {"sd": 0.59e6, "sdxl": 3.4e6}
STATE_FACTOR = {"adam": 3.0, "8bit": 1.5}  # state = fp32 weights + optimizer moments (× fp32 weights)
MB = 1 << 20
ESTIMATE_MARGIN = 1.25  # the size estimate can be this far off; beyond it, a full disk is certain


@dataclass
class Steps:
    train_images: int  # with repeats
    reg_images: int  # with repeats (before balancing), as sd-scripts prints it
    batches: int  # per epoch, all processes together
    max_train_steps: int
    epochs: int
    per_epoch: int  # optimizer steps per epoch (per process)
    overridden: bool  # steps computed from --max_train_epochs


def count_steps(ctx, scan: Scan) -> Steps | None:
    """Exactly sd-scripts' numbers: `num train images * repeats`, `num batches per epoch`, `num epochs`, steps."""
    options = ctx.options
    batches = train = reg = 0
    for index, dataset in enumerate(scan.layout.datasets):
        settings = dataset.settings
        subs = scan.of_dataset(index)
        train += sum(len(s.images) * s.subset.num_repeats for s in subs if not s.subset.is_reg)
        reg += sum(len(s.images) * s.subset.num_repeats for s in subs if s.subset.is_reg)
        if settings.resolution is None:
            return None
        silent: list[Finding] = []
        bounds = bucket_settings(ctx, settings, silent)
        if settings.enable_bucket and bounds is None:
            return None
        table, _ = dataset_table(scan, index, plan_for(settings, bounds))
        batches += table.batches(max(1, settings.batch_size))
    if train == 0:
        return None
    processes = 1
    if ctx.launch is not None:
        value = ctx.launch.launcher_option("--num_processes") or "1"
        if not value.isdigit():
            raise OptionError(f"accelerate launch --num_processes {value} is not a whole number")
        processes = int(value)
    accumulation = max(1, opt_int(options, "gradient_accumulation_steps", 1))
    epochs_opt = opt_int(options, "max_train_epochs", None)
    steps = opt_int(options, "max_train_steps", 1600)
    per_process = math.ceil(batches / max(1, processes))
    per_epoch = math.ceil(per_process / accumulation)
    if epochs_opt:
        steps = epochs_opt * math.ceil(batches / max(1, processes) / accumulation)
    epochs = math.ceil(steps / per_epoch) if per_epoch else 0
    return Steps(train, reg, batches, steps, epochs, per_epoch, bool(epochs_opt))


def _saves(ctx, steps: Steps) -> tuple[int, int, int, int]:
    """(models written, models kept, states written, states kept) by the end of the run."""
    options = ctx.options
    every_steps = opt_int(options, "save_every_n_steps", None)
    every_epochs = opt_int(options, "save_every_n_epochs", None)
    written = 0
    if every_steps:  # a step save at the last step too, besides the final one (sd-scripts train_network.py, train: the last step is saved by the final save)
        written += steps.max_train_steps // every_steps
    if every_epochs:
        written += max(0, (steps.epochs - 1) // every_epochs)
    kept = written
    last_n = opt_int(options, "save_last_n_epochs", None)
    last_n_steps = opt_int(options, "save_last_n_steps", None)
    if last_n:
        kept = min(kept, last_n)
    elif last_n_steps and every_steps:
        kept = min(kept, math.ceil(last_n_steps / every_steps))
    models_written, models_kept = written + 1, kept + 1
    states_written = states_kept = 0
    if opt_flag(options, "save_state"):
        states_written = written + 1
        state_last = opt_int(options, "save_last_n_epochs_state", None) or opt_int(options, "save_last_n_steps_state", None)
        states_kept = (min(written, state_last if opt_int(options, "save_last_n_epochs_state", None)
                           else math.ceil(state_last / (every_steps or 1))) if state_last else kept) + 1
    elif opt_flag(options, "save_state_on_train_end"):
        states_written = states_kept = 1
    return models_written, models_kept, states_written, states_kept


def lora_bytes(ctx) -> tuple[float, float]:
    """(saved LoRA file, one saved state) in bytes, estimated from the script, dim, precision, optimizer."""
    options = ctx.options
    kind = "sdxl" if "sdxl" in ctx.script_name else "sd"
    dim = opt_int(options, "network_dim", 4) or 4
    params = PARAMS_PER_RANK[kind] * dim
    precision = str(options.get("save_precision") or "float")
    file_bytes = params * (2 if precision in ("fp16", "bf16") else 4)
    optimizer = str(options.get("optimizer_type") or "").lower()
    state_bytes = params * 4 * STATE_FACTOR["8bit" if "8bit" in optimizer else "adam"]
    return file_bytes, state_bytes


def _existing_parent(path: Path) -> Path | None:
    for p in (path, *path.parents):
        if p.exists():
            return p
    return None


def _writable(path: Path) -> bool:
    if not os.access(path, os.W_OK):
        return False
    try:
        return not (os.statvfs(path).f_flag & os.ST_RDONLY)
    except (AttributeError, OSError):
        return True


def steps(ctx, scan: Scan) -> list[Finding]:
    require(scan, images=False)
    out: list[Finding] = []
    counted = True
    try:
        counted = _steps(ctx, scan, out)
    except (OptionError, ValueError) as exc:  # a non-numeric option value
        out.append(Finding(Severity.ERROR, str(exc), fix="Fix the option value in the command."))
    _output_dir(ctx, out)
    _latent_cache(ctx, scan, out)
    if not out and not counted:
        if not any(s.images for s in scan.subsets if not s.subset.is_reg):
            raise CheckSkipped("no training images to count steps for; see Dataset folders")
        raise CheckSkipped("the steps cannot be counted (no --resolution, or invalid bucket options); "
                           "see Resolution and buckets")
    return out


def _steps(ctx, scan: Scan, out: list[Finding]) -> bool:
    """The step arithmetic and the disk estimate; False when the steps cannot be counted."""
    s = count_steps(ctx, scan)
    if s is not None:
        how = (f"--max_train_epochs={opt_int(ctx.options, 'max_train_epochs', None)} → {s.max_train_steps} steps"
               if s.overridden else f"{s.max_train_steps} steps"
               + (" (the default --max_train_steps)" if ctx.options.get("max_train_steps") is None else ""))
        out.append(Finding(
            Severity.OK, f"{s.train_images} images with repeats, {s.batches} batches per epoch; {how} = {s.epochs} "
                         f"epoch{'s' * (s.epochs != 1)}",
            detail=f"num train images * repeats: {s.train_images}\nnum reg images: {s.reg_images}\n"
                   f"num batches per epoch: {s.batches}\nnum epochs: {s.epochs}\n"
                   f"total optimization steps: {s.max_train_steps}",
            facts={"train_images_with_repeats": s.train_images, "reg_images_with_repeats": s.reg_images,
                   "batches_per_epoch": s.batches, "epochs": s.epochs, "max_train_steps": s.max_train_steps}))
        if s.max_train_steps < s.per_epoch:
            out.append(Finding(Severity.INFO, f"{s.max_train_steps} steps is less than one epoch ({s.per_epoch} "
                                              "steps): some images are never seen",
                               fix="Raise --max_train_steps, or set --max_train_epochs."))
        _disk(ctx, s, out)
    return s is not None


def _disk(ctx, s: Steps, out: list[Finding]) -> None:
    models_written, models_kept, states_written, states_kept = _saves(ctx, s)
    file_bytes, state_bytes = lora_bytes(ctx)
    need = models_kept * file_bytes + states_kept * state_bytes
    text = (f"will save {models_written} LoRA file{'s' * (models_written != 1)} (~{file_bytes / MB:.0f} MB each)"
            + (f" and {states_written} training state{'s' * (states_written != 1)} (~{state_bytes / MB:.0f} MB each)"
               if states_written else "") + f": about {need / MB:,.0f} MB kept on disk")
    target = ctx.path_option("output_dir")
    base = _existing_parent(target) if target else None
    facts = {"models_written": models_written, "states_written": states_written, "estimated_bytes": int(need)}
    if base is None:
        out.append(Finding(Severity.INFO, text + " (rough estimate)", facts=facts))
        return
    free = shutil.disk_usage(base).free
    facts["free_bytes"] = free
    if need > ESTIMATE_MARGIN * free:  # beyond the estimate's error: the run will fail at a save
        out.append(Finding(Severity.ERROR, f"{text}, but the drive of {target} has only {free / MB:,.0f} MB free",
                           detail="The save fails at the end of training: `No space left on device`.",
                           fix="Free disk space, point --output_dir at a bigger drive, or keep fewer saves "
                               "(--save_last_n_steps / --save_last_n_epochs_state, fewer --save_every_n_*).",
                           cause="os.disk_full", facts=facts))
    elif need > 0.8 * free:
        out.append(Finding(Severity.WARN, f"{text} (rough estimate); the drive has {free / MB:,.0f} MB free "
                                          "(little or no margin)",
                           fix="Free some disk space or keep fewer saves.", cause="os.disk_full", facts=facts))
    else:
        out.append(Finding(Severity.OK, f"{text} (rough estimate); {free / MB / 1024:,.1f} GB free", facts=facts))


def _output_dir(ctx, out: list[Finding]) -> None:
    target = ctx.path_option("output_dir")
    if target is None:
        if not standalone(ctx) and ctx.launch is not None and ctx.launch.script:
            out.append(Finding(Severity.ERROR, "--output_dir is not set: the LoRA cannot be saved after training",
                               fix="Add --output_dir with a folder for the results.",
                               fix_command=corrected_command(ctx, set_={"output_dir": "./output"}),
                               cause="config.output_dir_missing"))
        return
    if target.exists() and not target.is_dir():
        out.append(Finding(Severity.ERROR, f"--output_dir {target} is a file, not a folder: saving fails after training",
                           fix="Point --output_dir at a folder.", cause="os.output_dir_not_writable"))
        return
    base = _existing_parent(target)
    if base is None or not base.is_dir() or not _writable(base):
        where = base or target
        out.append(Finding(Severity.ERROR, f"--output_dir {target} cannot be {'written' if base == target else 'created'}"
                                           f" ({where} is read-only or not yours): saving fails after training",
                           fix="Point --output_dir at a folder you can write to.", cause="os.output_dir_not_writable"))


def _latent_cache(ctx, scan: Scan, out: list[Finding]) -> None:
    if not opt_flag(ctx.options, "cache_latents_to_disk"):
        return
    locked = sorted({str(s.subset.image_dir) for s in scan.subsets if s.images and not _writable(s.subset.image_dir)})
    if locked:
        out.append(Finding(Severity.ERROR, f"--cache_latents_to_disk writes .npz files next to the images, but "
                                           f"{len(locked)} image folders are read-only: {', '.join(locked[:3])}",
                           fix="Copy the dataset to a writable folder, or use --cache_latents (memory) instead.",
                           cause="os.dataset_dir_not_writable", facts={"folders": locked}))
