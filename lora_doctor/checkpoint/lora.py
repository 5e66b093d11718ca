"""What a LoRA file holds, from its safetensors header (and the bytes of its `alpha` scalars only):
the rank of each module, its alpha, the network family, and what sd-scripts wrote in the metadata.

sd-scripts' networks.lora (v0.9–v0.10, networks/lora.py) names each module `lora_unet_…`/`lora_te…`
with a `.lora_down.weight` of shape (rank, in) for Linear layers, (rank, in, 1, 1) for 1×1 convs and
(rank, in, 3, 3) for 3×3 convs (only with `conv_dim` in --network_args), and an `.alpha` scalar.
Its metadata `ss_network_module`, `ss_network_dim`, `ss_network_alpha` are the options of the run
that wrote it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lora_doctor.checkpoint.safetensors_header import Header, read_scalars

# key fragments of each network family: networks.lora (and LyCORIS' LoCon) use lora_down/lora_up
FAMILY_MARKERS = (("loha", ".hada_w1_"), ("lokr", ".lokr_w"), ("oft", ".oft_"), ("ia3", ".on_input"),
                  ("lora", ".lora_down."), ("peft", ".lora_A."))


@dataclass
class LoraInfo:
    family: str  # "lora" (lora_down/lora_up), "loha", "lokr", "oft", "ia3", "peft" or "unknown"
    ranks: Counter = field(default_factory=Counter)  # rank of Linear and 1×1 conv modules -> count
    conv_ranks: Counter = field(default_factory=Counter)  # rank of 3×3 conv modules -> count
    alphas: Counter = field(default_factory=Counter)  # alpha value -> count
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def rank(self) -> int | None:
        return self.ranks.most_common(1)[0][0] if self.ranks else None

    @property
    def alpha(self) -> float | None:
        if self.alphas:
            return self.alphas.most_common(1)[0][0]
        return _number(self.metadata.get("ss_network_alpha"))

    @property
    def module(self) -> str | None:
        value = self.metadata.get("ss_network_module")
        return value if value and value != "None" else None


def _number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def lora_info(path: str | Path, header: Header) -> LoraInfo:
    keys = list(header.tensors)
    family = next((name for name, marker in FAMILY_MARKERS if any(marker in k for k in keys)), "unknown")
    info = LoraInfo(family, metadata={k: str(v) for k, v in header.metadata.items() if k.startswith("ss_")})
    conv: set[str] = set()
    for key in keys:
        if key.endswith(".lora_down.weight"):
            shape = header.tensors[key][1]
            if len(shape) == 4 and tuple(shape[2:]) != (1, 1):
                info.conv_ranks[shape[0]] += 1
                conv.add(key[:-len(".lora_down.weight")])
            elif shape:
                info.ranks[shape[0]] += 1
    # the alphas of the Linear/1×1 modules (3×3 convs have conv_alpha)
    alphas = read_scalars(path, header, [k for k in keys if k.endswith(".alpha") and k[:-len(".alpha")] not in conv])
    info.alphas.update(round(v, 4) for v in alphas.values())
    return info
