"""Time the model / versions / accelerate checks' hot paths; prints numbers.

    .venv/bin/python benchmarks/model_checks.py

1. reading the header of a sparse 6.9 GB SDXL-sized .safetensors: lora-doctor's reader beside the
   baseline of safetensors' own safe_open (mmap + header parse), both without loading tensors.
2. model.base on that file with train_network.py (header + classification + fit).
3. versions.packages on this venv (the target-package subprocess included; cold and cached).
4. accelerate.config with a config file (the accelerate-source subprocess included; cold and cached).
5. model.base on a repo id against a loopback Hub that never answers (bounded by the timeout).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def timed(fn, repeat=1):
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best * 1000


def sparse_sdxl(path: Path) -> None:
    names = ["conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight",
             "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias"]
    names += [f"model.diffusion_model.block.{i}.weight" for i in range(2500)]
    each = 6_900_000_000 // len(names) // 2 * 2
    header, offset = {}, 0
    for name in names:
        header[name] = {"dtype": "F16", "shape": [each // 2], "data_offsets": [offset, offset + each]}
        offset += each
    raw = json.dumps(header).encode()
    with open(path, "wb") as fh:
        fh.write(len(raw).to_bytes(8, "little") + raw)
        fh.seek(8 + len(raw) + offset - 1)
        fh.write(b"\0")


def main() -> None:
    from safetensors import safe_open

    from lora_doctor.hub import repo as hub_repo
    from lora_doctor.launch.command import parse_command
    from lora_doctor.context import build_context
    from lora_doctor.plugins.accelerate_config import check_accelerate_config
    from lora_doctor.plugins.model_format import check_model
    from lora_doctor.plugins.versions import check_versions
    from lora_doctor.checkpoint.safetensors_header import read_header

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "sd_xl_base_1.0.safetensors"
        sparse_sdxl(model)
        print(f"sparse file: {model.stat().st_size / 1e9:.1f} GB, {len(read_header(model).tensors)} tensors")
        ours = timed(lambda: read_header(model), 20)

        def baseline():
            with safe_open(str(model), "np") as fh:
                list(fh.keys())

        print(f"1. header: lora-doctor {ours:.2f} ms | safetensors.safe_open {timed(baseline, 20):.2f} ms")
        launch = parse_command(["accelerate", "launch", "train_network.py", "--pretrained_model_name_or_path", str(model)])
        env = {"HOME": str(tmp), "HF_HOME": str(tmp / "hf")}
        ctx = build_context(launch=launch, cwd=tmp, env=env, offline=True, probe_timeout=60)
        ctx.facts.get()
        print(f"2. model.base (SDXL file, train_network.py): {timed(lambda: list(check_model(ctx)), 5):.2f} ms")
        print(f"3. versions.packages: cold {timed(lambda: list(check_versions(ctx))):.1f} ms, "
              f"cached {timed(lambda: list(check_versions(ctx)), 5):.1f} ms")
        (tmp / "hf" / "accelerate").mkdir(parents=True)
        (tmp / "hf" / "accelerate" / "default_config.yaml").write_text(
            "compute_environment: LOCAL_MACHINE\ndistributed_type: 'NO'\nnum_processes: 1\nmixed_precision: fp16\n")
        print(f"4. accelerate.config: cold {timed(lambda: list(check_accelerate_config(ctx))):.1f} ms, "
              f"cached {timed(lambda: list(check_accelerate_config(ctx)), 5):.1f} ms")
        from hub_server import HubServer

        hub_repo.LOOKUP_TIMEOUT = 2.0
        with HubServer(hang=True) as hub:
            online = build_context(launch=parse_command(["accelerate", "launch", "train_network.py",
                                                         "--pretrained_model_name_or_path", "org/model"]),
                                   cwd=tmp, env={**env, "HF_ENDPOINT": hub.url}, facts=ctx.facts.get())
            print(f"5. model.base, never-answering Hub, timeout 2 s: {timed(lambda: list(check_model(online))):.0f} ms")


if __name__ == "__main__":
    main()
