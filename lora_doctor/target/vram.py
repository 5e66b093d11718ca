"""A rough estimate of the GPU memory an sd-scripts training command needs.

Deliberately simple (weights + activations + fixed overheads), calibrated on commonly reported
numbers: SD1.5 LoRA at 512, batch 1, fp16, gradient checkpointing ≈ 4 GiB; SDXL LoRA at 1024,
bf16, gradient checkpointing ≈ 10–11 GiB; the same without checkpointing ≈ 20+ GiB. It tells
"clearly fits" from "clearly does not", nothing finer; always presented as an estimate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GIB = 1024 ** 3
# parameters (billions): UNet, text encoder(s), VAE
PARAMS = {"sd": (0.86, 0.123, 0.084), "sdxl": (2.57, 0.82, 0.084)}
BASE_RES = {"sd": 512, "sdxl": 1024}
# activation GiB per sample at the base resolution, half precision: (without, with) checkpointing
ACTIVATIONS = {"sd": (3.0, 0.6), "sdxl": (12.0, 2.0)}
VAE_ENCODE = {"sd": 0.5, "sdxl": 2.0}  # GiB per sample at base resolution, half precision
OVERHEAD = 1.0  # CUDA context, cuDNN workspace
NETWORK_SCRIPTS = {"train_network": "sd", "sdxl_train_network": "sdxl"}
FULL_SCRIPTS = {"train_db": "sd", "fine_tune": "sd", "sdxl_train": "sdxl"}


@dataclass
class Estimate:
    gib: float
    assumptions: list[str] = field(default_factory=list)


def _flag(options, name) -> bool:
    return bool(options.get(name)) and options.get(name) not in ("false", "False", "0")


def _resolution(value, default: int) -> tuple[int, int]:
    if isinstance(value, list):
        value = ",".join(value)
    try:
        parts = [int(float(p)) for p in str(value).replace("x", ",").split(",") if p.strip()]
    except ValueError:
        parts = []
    if not parts:
        return default, default
    return parts[0], parts[-1]


def _int(value, default: int) -> int:
    try:
        return max(1, int(str(value)))
    except (TypeError, ValueError):
        return default


def estimate(script: str, options) -> Estimate | None:
    """GiB the command needs on one GPU, or None for a script this estimate does not cover."""
    family = NETWORK_SCRIPTS.get(script) or FULL_SCRIPTS.get(script)
    if family is None:
        return None
    full = script in FULL_SCRIPTS
    unet, te, vae = PARAMS[family]
    precision = str(options.get("mixed_precision") or "no")
    half = precision in ("fp16", "bf16")
    wbytes = 2 if half else 4
    w, h = _resolution(options.get("resolution"), BASE_RES[family])
    batch = _int(options.get("train_batch_size"), 1)
    checkpointing = _flag(options, "gradient_checkpointing")
    cached = _flag(options, "cache_latents") or _flag(options, "cache_latents_to_disk")
    te_cached = _flag(options, "cache_text_encoder_outputs") or _flag(options, "cache_text_encoder_outputs_to_disk")
    attention = any(_flag(options, k) for k in ("xformers", "sdpa", "mem_eff_attn"))
    unet_bytes = 1 if _flag(options, "fp8_base") and half else wbytes
    gib = unet * 1e9 * unet_bytes / GIB
    if not te_cached:
        gib += te * 1e9 * wbytes / GIB
    if full:
        optimizer = str(options.get("optimizer_type") or ("AdamW8bit" if _flag(options, "use_8bit_adam") else "AdamW"))
        states = 2 if "8bit" in optimizer.lower() else 8
        grad = 2 if _flag(options, "full_fp16") or _flag(options, "full_bf16") else 4
        gib += unet * 1e9 * (grad + states + (4 - unet_bytes)) / GIB
    else:
        gib += 0.2  # the network's weights, gradients and optimizer state
    scale = batch * (w * h) / (BASE_RES[family] ** 2)
    act = ACTIVATIONS[family][1 if checkpointing else 0] * scale * (1 if half else 2)
    gib += act * (1 if attention else 1.4)
    if not cached:
        vae_fp32 = _flag(options, "no_half_vae") or not half
        gib += vae * 1e9 * (4 if vae_fp32 else 2) / GIB + VAE_ENCODE[family] * scale * (2 if vae_fp32 else 1)
    gib = (gib + OVERHEAD) * 1.1
    assumptions = [f"{'SDXL' if family == 'sdxl' else 'SD1/2'} {'full fine-tune' if full else 'LoRA'}",
                   f"batch {batch} at {w}x{h}", f"mixed precision {precision}",
                   f"gradient checkpointing {'on' if checkpointing else 'off'}",
                   f"latents {'cached' if cached else 'encoded every step'}"]
    if not attention:
        assumptions.append("no --xformers/--sdpa")
    return Estimate(round(gib, 1), assumptions)


def savings(script: str, options, half: str = "fp16") -> list[tuple[str, object]]:
    """Option changes that lower the estimate, most effective first: [(option, value)]."""
    family = NETWORK_SCRIPTS.get(script) or FULL_SCRIPTS.get(script)
    out: list[tuple[str, object]] = []
    if family is None:
        return out
    if str(options.get("mixed_precision") or "no") == "no":
        out.append(("mixed_precision", half))
    if not _flag(options, "gradient_checkpointing"):
        out.append(("gradient_checkpointing", True))
    if not any(_flag(options, k) for k in ("xformers", "sdpa", "mem_eff_attn")):
        out.append(("sdpa", True))
    if not (_flag(options, "cache_latents") or _flag(options, "cache_latents_to_disk")):
        out.append(("cache_latents", True))
    if family == "sdxl" and script in NETWORK_SCRIPTS and not _flag(options, "cache_text_encoder_outputs"):
        out.append(("network_train_unet_only", True))
        out.append(("cache_text_encoder_outputs", True))
    if _int(options.get("train_batch_size"), 1) > 1:
        out.append(("train_batch_size", "1"))
    return out
