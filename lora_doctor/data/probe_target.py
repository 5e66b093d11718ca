"""Run inside the *target* interpreter (the one that will train); prints one JSON object.

Stand-alone on purpose: it must run on any Python >= 3.8 with nothing but the stdlib, and it
imports torch last, guarded, so a missing or broken torch is a fact, not a crash.
"""
import json
import os
import platform
import struct
import sys
import time

PACKAGES = (
    "torch", "torchvision", "xformers", "transformers", "diffusers", "accelerate", "huggingface_hub",
    "safetensors", "bitsandbytes", "numpy", "tokenizers", "opencv-python", "voluptuous", "toml",
    "lion-pytorch", "prodigyopt", "dadaptation", "schedulefree", "lycoris-lora", "open-clip-torch",
    "tensorboard", "wandb", "imagesize", "einops", "pytorch-optimizer", "triton", "library",
)


def package_versions():
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8
        return {}
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except Exception:
            out[name] = None
    return out


def torch_facts():
    facts = {"imported": False, "error": None}
    started = time.time()
    try:
        import torch
    except BaseException as exc:  # ImportError, OSError (DLL), even SystemExit from a broken build
        facts["error"] = "%s: %s" % (type(exc).__name__, exc)
        return facts
    facts["imported"] = True
    facts["import_seconds"] = round(time.time() - started, 3)
    facts["version"] = getattr(torch, "__version__", None)
    facts["cuda_build"] = getattr(torch.version, "cuda", None)
    facts["hip_build"] = getattr(torch.version, "hip", None)
    try:
        facts["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    except Exception:
        facts["cudnn"] = None
    try:
        facts["cuda_available"] = bool(torch.cuda.is_available())
    except Exception as exc:
        facts["cuda_available"] = False
        facts["cuda_error"] = "%s: %s" % (type(exc).__name__, exc)
    try:
        facts["mps_available"] = bool(torch.backends.mps.is_available())
    except Exception:
        facts["mps_available"] = False
    devices = []
    if facts["cuda_available"]:
        try:
            facts["arch_list"] = torch.cuda.get_arch_list()
        except Exception:
            facts["arch_list"] = []
        for i in range(torch.cuda.device_count()):
            dev = {"index": i}
            try:
                props = torch.cuda.get_device_properties(i)
                dev["name"] = props.name
                dev["capability"] = [props.major, props.minor]
                dev["memory_bytes"] = int(props.total_memory)
                dev["bf16"] = (props.major, props.minor) >= (8, 0)
            except Exception as exc:
                dev["error"] = "%s: %s" % (type(exc).__name__, exc)
            devices.append(dev)
    facts["devices"] = devices
    return facts


def main():
    started = time.time()
    out = {
        "python": {
            "executable": sys.executable,
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "bits": struct.calcsize("P") * 8,
            "platform": sys.platform,
            "machine": platform.machine(),
            "prefix": sys.prefix,
            "base_prefix": getattr(sys, "base_prefix", sys.prefix),
            "venv": getattr(sys, "base_prefix", sys.prefix) != sys.prefix,
            "conda": os.path.isdir(os.path.join(sys.prefix, "conda-meta")),
        },
        "packages": package_versions(),
    }
    out["torch"] = torch_facts() if "--no-torch" not in sys.argv else {"imported": False, "error": "skipped"}
    out["probe_seconds"] = round(time.time() - started, 3)
    sys.stdout.write("\n@@LORA_DOCTOR_PROBE@@" + json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
