"""Builtin plugin: diagnoses a pattern cannot express.

- CUDA out of memory: reads "Tried to allocate X", the total/free figures and the command's batch
  size, resolution and precision, and says what to change first (with the corrected command);
- NaN loss: what most likely made it NaN (learning rate, fp16, a GTX 16xx card);
- a process killed without a traceback: out of RAM, the Windows paging file, or a signal.
"""

from __future__ import annotations

import re

from lora_doctor.hookspecs import hookimpl
from lora_doctor.launch.edit import corrected
from lora_doctor.model import Diagnosis

_SIZE = r"([\d.]+)\s*(GiB|MiB|KiB|GB|MB|B)\b"
_TRIED = re.compile(r"Tried to allocate " + _SIZE)
_TOTAL = re.compile(r"([\d.]+)\s*(GiB|MiB) total capacity|total capacity of ([\d.]+)\s*(GiB|MiB)")
_FREE = re.compile(r"([\d.]+)\s*(GiB|MiB|KiB) free|of which ([\d.]+)\s*(GiB|MiB|KiB) is free")
_UNIT = {"GiB": 1024.0, "GB": 1000.0, "MiB": 1.0, "MB": 1.0, "KiB": 1 / 1024, "B": 1 / 1024 ** 2}
REFS_OOM = ["https://pytorch.org/docs/stable/notes/cuda.html#environment-variables",
            "https://github.com/kohya-ss/sd-scripts/blob/main/docs/train_network_README-ja.md"]


GENERIC_OOM_STEPS = [
    "Train in mixed precision (--mixed_precision=fp16, or bf16 on RTX 30xx and newer) and add "
    "--gradient_checkpointing: the two largest savings.",
    "Lower --train_batch_size (raise --gradient_accumulation_steps to keep the effective batch) or --resolution.",
    "Use --sdpa (or --xformers), --cache_latents and an 8-bit optimizer (--optimizer_type=AdamW8bit).",
    "Run `lora-doctor diagnose LOG -- <your training command>` to get the corrected command.",
]


def _mib(value: str, unit: str) -> float:
    return float(value) * _UNIT.get(unit, 1.0)


def _fmt(mib: float) -> str:
    return f"{mib / 1024:.2f} GiB" if mib >= 1024 else f"{mib:.0f} MiB"


def _oom_text(failure, context) -> str:
    from lora_doctor.diagnose.logparse import chain

    tops = ([failure] if failure is not None else []) + list(context.log.failures)
    texts = (f"{f.exception}: {f.message}" for top in tops for f in reversed(chain(top)))
    return next((t for t in texts if "out of memory" in t.lower() or "OutOfMemoryError" in t), "")


def _resolution(value) -> int | None:
    if not value:
        return None
    nums = [int(n) for n in re.findall(r"\d+", str(value if not isinstance(value, list) else ",".join(value)))]
    return max(nums) if nums else None


def _bf16_ok(context) -> bool:
    gpus = context.fact("torch.devices") or context.fact("gpus") or []
    for gpu in gpus if isinstance(gpus, list) else []:
        cap = gpu.get("capability") if isinstance(gpu, dict) else None
        if isinstance(cap, (list, tuple)) and cap and int(cap[0]) >= 8:
            return True
    return False


def diagnose_oom(failure, context) -> Diagnosis | None:
    """CUDA OOM: the figures, and the first things to change in this command."""
    text = _oom_text(failure, context)
    if not text or ("CUDA" not in text and "OutOfMemoryError" not in text):
        return None
    evidence = [text.split("\n", 1)[0][:300]]
    numbers = []
    tried = _TRIED.search(text)
    total = _TOTAL.search(text)
    free = _FREE.search(text)
    tried_mib = _mib(*tried.groups()) if tried else None
    total_mib = _mib(total.group(1) or total.group(3), total.group(2) or total.group(4)) if total else None
    free_mib = _mib(free.group(1) or free.group(3), free.group(2) or free.group(4)) if free else None
    if tried_mib is not None:
        numbers.append(f"it needed {_fmt(tried_mib)} more")
    if free_mib is not None:
        numbers.append(f"{_fmt(free_mib)} was free")
    if total_mib is not None:
        numbers.append(f"the GPU has {_fmt(total_mib)} in total")
    if context.launch is None:
        return Diagnosis(signature_id="cuda.oom", title="The GPU ran out of memory (CUDA out of memory)",
                         confidence=0.95, evidence=evidence,
                         why="The GPU ran out of memory" + (": " + ", ".join(numbers) if numbers else "") + ". "
                             "Memory grows with the batch size, the resolution and the precision.",
                         fix=GENERIC_OOM_STEPS, refs=REFS_OOM, source="plugin diagnose_code")
    opts = context.options
    batch = int(opts.get("train_batch_size") or 1) if str(opts.get("train_batch_size") or "1").isdigit() else 1
    res = _resolution(opts.get("resolution"))
    precision = str(opts.get("mixed_precision") or "no")
    sdxl = "sdxl" in (getattr(context.launch, "script_name", "") or "")
    steps: list[str] = []
    changes: list[tuple[str, object]] = []
    if precision in ("no", "fp32", "None"):
        target = "bf16" if _bf16_ok(context) else "fp16"
        steps.append(f"Train in mixed precision: --mixed_precision={target} (now '{precision}': full fp32 "
                     "weights and activations take about twice the memory).")
        changes.append(("mixed_precision", target))
    if not opts.get("gradient_checkpointing"):
        steps.append("Add --gradient_checkpointing: it recomputes activations instead of keeping them, the "
                     "largest saving for the least quality cost.")
        changes.append(("gradient_checkpointing", True))
    if batch > 1:
        accum = int(opts.get("gradient_accumulation_steps") or 1) if str(
            opts.get("gradient_accumulation_steps") or "1").isdigit() else 1
        steps.append(f"Halve the batch: --train_batch_size={batch // 2} with --gradient_accumulation_steps="
                     f"{accum * 2} keeps the same effective batch.")
        changes += [("train_batch_size", batch // 2), ("gradient_accumulation_steps", accum * 2)]
    if not (opts.get("xformers") or opts.get("sdpa") or opts.get("mem_eff_attn")):
        steps.append("Use memory-efficient attention: --sdpa (or --xformers if it is installed).")
    if not opts.get("cache_latents"):
        steps.append("Add --cache_latents so the VAE is not needed during the training steps.")
    optimizer = str(opts.get("optimizer_type") or "AdamW")
    if optimizer.lower() in ("adamw", "adam"):
        steps.append("Use an 8-bit optimizer: --optimizer_type=AdamW8bit (needs bitsandbytes).")
    if sdxl and not opts.get("cache_text_encoder_outputs"):
        steps.append("For SDXL: --cache_text_encoder_outputs and --network_train_unet_only free the text "
                     "encoders' memory.")
    limit = 1024 if sdxl else 768
    if res and res > limit:
        steps.append(f"Lower --resolution (now {res}): memory grows with the square of the side.")
    if total_mib is not None and tried_mib is not None and tried_mib > total_mib:
        steps.insert(0, f"A single allocation ({_fmt(tried_mib)}) is larger than the whole GPU "
                        f"({_fmt(total_mib)}): the settings are far off; start from the smallest ones below.")
    if not steps:
        steps.append("Lower --resolution or --network_dim; if nothing else helps, train on a GPU with more memory.")
    steps.append("If the reserved-but-unallocated memory is large, set PYTORCH_CUDA_ALLOC_CONF="
                 "expandable_segments:True to reduce fragmentation.")
    why = ("The GPU ran out of memory" + (": " + ", ".join(numbers) if numbers else "") + ". "
           f"Memory grows with the batch size (now {batch}), the resolution"
           f"{f' (now {res})' if res else ''} and the precision (now {precision}).")
    return Diagnosis(signature_id="cuda.oom", title="The GPU ran out of memory (CUDA out of memory)",
                     confidence=0.95, evidence=evidence, why=why, fix=steps,
                     fix_command=corrected(context, changes) if changes else "", refs=REFS_OOM,
                     source="plugin diagnose_code")


def diagnose_nan(failure, context) -> Diagnosis | None:
    """Loss became NaN: name the most likely reason from the command and the GPU."""
    line = context.notable.get("loss_nan")
    if not line:
        return None
    opts = context.options
    steps: list[str] = []
    changes: list[tuple[str, object]] = []
    try:
        lr = float(opts.get("learning_rate") or opts.get("unet_lr") or 0)
    except (TypeError, ValueError):
        lr = 0.0
    if lr >= 1e-2:
        steps.append(f"Lower the learning rate: {lr:g} is far above the usual 1e-4 for LoRA "
                     "(try --learning_rate=1e-4).")
        changes.append(("learning_rate", "1e-4"))
    precision = str(opts.get("mixed_precision") or "")
    gpu_names = " ".join(str(g.get("name", "")) for g in (context.fact("torch.devices") or [])
                         if isinstance(g, dict))
    if "GTX 16" in gpu_names and precision == "fp16":
        return Diagnosis(signature_id="cuda.gtx16xx_half_precision_nan",
                         title="The loss became NaN: GTX 16xx cards produce NaN in half precision",
                         confidence=0.85, evidence=[line.strip()[:300], f"GPU: {gpu_names}"],
                         why="GTX 16xx (Turing without tensor cores) gives NaN in fp16 with the default cuDNN "
                             "settings.",
                         fix=["Train in full precision: --mixed_precision=no (slower, but correct)."],
                         fix_command=corrected(context, [("mixed_precision", "no")]), source="plugin diagnose_code")
    if precision == "fp16":
        steps.append("fp16 overflows easily: use --mixed_precision=bf16 on RTX 30xx or newer; with SDXL keep "
                     "--no_half_vae.")
    steps.append("Check the first steps' loss: if it is NaN from step 1, suspect the data or the VAE "
                 "(SDXL: --no_half_vae); if it grows and then turns NaN, the learning rate.")
    steps.append("The LoRA saved from this run is unusable (NaN weights): retrain after the fix.")
    return Diagnosis(signature_id="train.loss_nan", title="The training loss became NaN",
                     confidence=0.9 if lr >= 1e-2 else 0.8, evidence=[line.strip()[:300]],
                     why="Once one step produces NaN (an update too large for the weights, or an fp16 overflow), "
                         "every later step is NaN too and the network learns nothing.",
                     fix=steps, fix_command=corrected(context, changes) if changes else "",
                     source="plugin diagnose_code")


def diagnose_killed(failure, context) -> Diagnosis | None:
    """No traceback, the process was killed: which of out-of-RAM, the paging file, a signal."""
    exit_ = context.exit
    notable = context.notable
    if notable.get("paging_file"):
        return Diagnosis(signature_id="os.windows_paging_file_too_small",
                         title="Windows ran out of virtual memory: the paging file is too small",
                         confidence=0.9, evidence=[notable["paging_file"].strip()[:300]],
                         why="Each process that imports torch commits gigabytes of virtual memory for the CUDA "
                             "libraries; with several DataLoader workers the paging file runs out (WinError 1455).",
                         fix=["Lower --max_data_loader_n_workers (e.g. 1 or 0) and drop "
                              "--persistent_data_loader_workers.",
                              "Let Windows manage the paging file size, or set it to at least 32 GB on a drive "
                              "with free space (System > About > Advanced system settings > Performance)."],
                         fix_command=corrected(context, [("max_data_loader_n_workers", 1)],
                                              ("persistent_data_loader_workers",)),
                         source="plugin diagnose_code")
    if failure is not None and failure.exception and not failure.is_wrapper:
        return None  # a real exception explains it; the signatures handle that
    if exit_ is None or exit_.signal != 9:
        return None
    evidence = [f"exit: {exit_.description}"]
    if notable.get("killed"):
        evidence.append(notable["killed"].strip()[:300])
    return Diagnosis(signature_id="os.process_killed_out_of_ram",
                     title="The training process was killed (SIGKILL), most likely for running out of RAM",
                     confidence=0.9 if notable.get("oom_killer") else 0.7, evidence=evidence,
                     why="A process killed with signal 9 and no traceback is almost always the kernel's (or "
                         "WSL's) out-of-memory killer: loading a checkpoint, caching latents or DataLoader "
                         "workers needed more RAM than the machine (or the WSL VM) has.",
                     fix=["Use fewer DataLoader workers (--max_data_loader_n_workers=1) and add --lowram if "
                          "the model is loaded to RAM first.",
                          "Cache latents to disk (--cache_latents_to_disk) instead of RAM.",
                          "On WSL, raise the VM's memory in %UserProfile%\\.wslconfig ([wsl2] memory=…); "
                          "elsewhere add swap or close other programs.",
                          "Check `dmesg | grep -i kill` (Linux) to confirm the out-of-memory killer."],
                     source="plugin diagnose_code")


@hookimpl
def lora_doctor_diagnose(failure, postmortem):
    """CUDA OOM figures, NaN loss and killed processes, computed from the log and the command."""
    out = []
    for fn in (diagnose_oom, diagnose_nan, diagnose_killed):
        d = fn(failure, postmortem)
        if d is not None:
            out.append(d)
    return out
