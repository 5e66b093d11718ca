"""Tell what a checkpoint is from its tensor names and shapes (sd-scripts library/model_util.py and library/sdxl_model_util.py key names), and what a script needs."""

from __future__ import annotations

from dataclasses import dataclass

from lora_doctor.checkpoint.safetensors_header import Header

ATTN2_K = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
ATTN2_K_ALT = "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"
IN_CONV = "model.diffusion_model.input_blocks.0.0.weight"
LORA_PREFIXES = ("lora_unet_", "lora_te_", "lora_te1_", "lora_te2_", "lora_transformer_")
LORA_MARKERS = (".lora_down.", ".lora_up.", ".lora_A.", ".lora_B.", ".hada_w1_", ".lokr_w1", ".oft_blocks",
                ".lora.down.", ".lora.up.")
VAE_PREFIXES = ("first_stage_model.", "encoder.", "decoder.", "quant_conv.", "post_quant_conv.")

LABELS = {
    "sd1": "Stable Diffusion 1.x checkpoint",
    "sd2": "Stable Diffusion 2.x checkpoint",
    "sd": "Stable Diffusion 1.x/2.x checkpoint",
    "sdxl": "SDXL base checkpoint",
    "sdxl_refiner": "SDXL refiner checkpoint",
    "lora": "LoRA/LyCORIS network (not a base model)",
    "vae": "VAE only (not a base model)",
    "flux": "FLUX model",
    "sd3": "Stable Diffusion 3 model",
    "component": "a single diffusers component (not a full checkpoint)",
    "unknown": "unrecognised weights",
}


@dataclass(frozen=True)
class ModelKind:
    """`name` is a key of LABELS; `inpaint` for 9-channel UNets; `v_pred` when the file says so."""

    name: str
    inpaint: bool = False
    v_pred: bool = False

    @property
    def label(self) -> str:
        return ("inpainting " if self.inpaint else "") + LABELS[self.name]

    @property
    def generation(self) -> str:
        """'sd12', 'sdxl', 'other' or '' (not a base model)."""
        if self.name in ("sd1", "sd2", "sd"):
            return "sd12"
        if self.name in ("sdxl", "sdxl_refiner"):
            return "sdxl"
        return "other" if self.name in ("flux", "sd3") else ""


def classify(header: Header) -> ModelKind:
    keys = header.tensors.keys()
    if any(k.startswith(LORA_PREFIXES) for k in keys) or any(m in k for k in keys for m in LORA_MARKERS):
        return ModelKind("lora")
    has = lambda prefix: any(k.startswith(prefix) for k in keys)  # noqa: E731
    if has("double_blocks.") or has("model.diffusion_model.double_blocks."):
        return ModelKind("flux")
    if has("joint_blocks.") or has("model.diffusion_model.joint_blocks."):
        return ModelKind("sd3")
    in_conv = header.shape(IN_CONV)
    inpaint = bool(in_conv and len(in_conv) > 1 and in_conv[1] == 9)
    v_pred = "v_pred" in keys or str(header.metadata.get("modelspec.prediction_type", "")).startswith("v")
    if has("conditioner.embedders.1.model.") and has("conditioner.embedders.0.transformer."):
        return ModelKind("sdxl", inpaint, v_pred)
    if has("conditioner.embedders.0.model."):
        return ModelKind("sdxl_refiner", inpaint, v_pred)
    if has("model.diffusion_model."):
        to_k = header.shape(ATTN2_K) or header.shape(ATTN2_K_ALT)
        if to_k and to_k[-1] == 768:
            return ModelKind("sd1", inpaint, v_pred)
        if to_k and to_k[-1] == 1024:
            return ModelKind("sd2", inpaint, v_pred)
        if to_k and to_k[-1] == 2048:
            return ModelKind("sdxl", inpaint, v_pred)
        if has("cond_stage_model.model."):
            return ModelKind("sd2", inpaint, v_pred)
        if has("cond_stage_model.transformer."):
            return ModelKind("sd1", inpaint, v_pred)
        return ModelKind("sd", inpaint, v_pred)
    if keys and all(k.startswith(VAE_PREFIXES) for k in keys):
        return ModelKind("vae")
    if has("down_blocks.") or has("text_model.") or has("conv_in."):
        return ModelKind("component")
    return ModelKind("unknown")


def script_generation(script: str) -> str:
    """Which models a training script loads: 'sdxl', 'sd12', 'other' or '' (unknown script)."""
    if not script:
        return ""
    if script.startswith("sdxl_"):
        return "sdxl"
    if script.startswith(("flux_", "sd3_", "lumina_", "anima_", "hunyuan")):
        return "other"
    if script in ("train_network", "train_db", "fine_tune", "train_textual_inversion", "train_control_net",
                  "train_textual_inversion_XTI", "train_controlnet"):
        return "sd12"
    return ""
