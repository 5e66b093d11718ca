"""Builtin plugin: live hints while training runs (NaN loss, CUDA out of memory).

What counts as a NaN loss or an out-of-memory line is diagnose/notable.py's vocabulary, the one
the post-mortem uses: a run `--stop-on-nan` stops is one whose diagnosis names the NaN.
"""

from __future__ import annotations

from lora_doctor.diagnose.notable import CUDA_OOM_RE, LOSS_NAN_RE, is_cuda_oom, loss_is_nan, may_show_nan  # noqa: F401
from lora_doctor.hookspecs import hookimpl

NAN_LOSS_RE = LOSS_NAN_RE  # the names this module had
OOM_RE = CUDA_OOM_RE


def _option(context, name):
    options = getattr(context, "options", None) or {}
    return options.get(name)


def nan_hint(context) -> str:
    lr = _option(context, "learning_rate")
    mp = _option(context, "mixed_precision")
    parts = ["loss is NaN: from here on the LoRA being trained (and every saved file) is garbage.",
             "Stop the run (Ctrl-C; `lora-doctor run --stop-on-nan` does it for you), then"]
    if lr:
        parts.append(f"  - lower the learning rate (your --learning_rate {lr} -> try a tenth of it),")
    else:
        parts.append("  - lower --learning_rate,")
    if mp == "fp16":
        parts.append("  - fp16 can overflow: try --mixed_precision=bf16 on an RTX 30xx or newer, and --no_half_vae.")
    else:
        parts.append("  - with an SDXL model add --no_half_vae (its VAE overflows in fp16).")
    return "\n".join(parts)


def oom_hint(context) -> str:
    batch = _option(context, "train_batch_size")
    parts = ["CUDA out of memory: the GPU is too small for these settings."]
    if batch not in (None, "1", 1):
        parts.append(f"  - your --train_batch_size {batch} -> 1")
    checklist = [("gradient_checkpointing", "--gradient_checkpointing"), ("cache_latents", "--cache_latents"),
                 ("xformers", "--xformers (or --sdpa)")]
    missing = [flag for key, flag in checklist
               if not _option(context, key) and not (key == "xformers" and _option(context, "sdpa"))]
    if missing:
        parts.append("  - add " + ", ".join(missing))
    parts.append("  - a lower --resolution or --network_dim also helps; `lora-doctor` explains the crash when it ends.")
    return "\n".join(parts)


@hookimpl
def lora_doctor_watch_line(line, context):
    """NaN loss in the progress bar and CUDA out-of-memory messages get a short hint."""
    if may_show_nan(line) and loss_is_nan(line):
        return nan_hint(context)
    if ("emory" in line or "EMORY" in line) and is_cuda_oom(line):
        return oom_hint(context)
    return None
