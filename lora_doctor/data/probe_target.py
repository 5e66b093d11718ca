"""Run inside the *target* interpreter (the one that will train); prints JSON facts.

Stand-alone on purpose: it must run on any Python >= 3.8 with nothing but the stdlib. It
prints in two steps, each line after its marker and flushed: first the interpreter and the
package versions (metadata only, nothing imported), then torch's own facts. So a torch import
that hangs or kills the interpreter still leaves the first half for the doctor to read.
"""
import json
import os
import platform
import struct
import sys
import time
import warnings

BASE_MARKER = "@@LORA_DOCTOR_PROBE@@"
TORCH_MARKER = "@@LORA_DOCTOR_TORCH@@"
DISTS_MARKER = "@@LORA_DOCTOR_DISTS@@"

PACKAGES = (
    "torch", "torchvision", "xformers", "transformers", "diffusers", "accelerate", "huggingface_hub",
    "safetensors", "bitsandbytes", "numpy", "tokenizers", "opencv-python", "voluptuous", "toml",
    "lion-pytorch", "prodigyopt", "dadaptation", "schedulefree", "lycoris-lora", "open-clip-torch",
    "tensorboard", "wandb", "imagesize", "einops", "pytorch-optimizer", "triton", "library",
    "ftfy", "sentencepiece", "rich", "pillow", "prodigy-plus-schedule-free",
)


def emit(marker, obj):
    sys.stdout.write("\n" + marker + json.dumps(obj) + "\n")
    sys.stdout.flush()


def describe(exc):
    return ("%s: %s" % (type(exc).__name__, exc)).strip()


def package_versions():
    try:
        from importlib import metadata
    except ImportError:
        return {}
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except Exception:
            out[name] = None
    return out


def distributions(want):
    """Every installed distribution (canonical name -> version; the first on sys.path wins, as
    for import) and the declared requirements of those in `want`."""
    import re

    try:
        from importlib import metadata
    except ImportError:
        return {"dists": {}, "requires": {}}
    dists, requires = {}, {}
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"]
        except Exception:
            name = None
        if not name:
            continue
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in dists:
            continue
        dists[key] = dist.version
        if key in want:
            try:
                requires[key] = list(dist.requires or [])
            except Exception:
                requires[key] = []
    return {"dists": dists, "requires": requires}


def python_facts():
    base_prefix = getattr(sys, "base_prefix", sys.prefix)
    return {
        "executable": sys.executable,
        "version": platform.python_version(),
        "implementation": platform.python_implementation(),
        "bits": struct.calcsize("P") * 8,
        "platform": sys.platform,
        "machine": platform.machine(),
        "prefix": sys.prefix,
        "base_prefix": base_prefix,
        "venv": base_prefix != sys.prefix,
        "conda": os.path.isdir(os.path.join(sys.prefix, "conda-meta")),
        "virtual_env_var": os.environ.get("VIRTUAL_ENV"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def device_facts(torch, i):
    dev = {"index": i}
    try:
        props = torch.cuda.get_device_properties(i)
        dev["name"] = props.name
        dev["capability"] = [props.major, props.minor]
        dev["memory_bytes"] = int(props.total_memory)
        # torch.cuda.is_bf16_supported() says True on pre-Ampere cards (emulation): judge by capability.
        dev["bf16"] = (props.major, props.minor) >= (8, 0)
        dev["multiprocessors"] = getattr(props, "multi_processor_count", None)
    except Exception as exc:
        dev["error"] = describe(exc)
    return dev


def torch_facts():
    facts = {"imported": False, "error": None}
    started = time.time()
    try:
        import torch
    except BaseException as exc:  # ImportError, OSError (a DLL), even SystemExit from a broken build
        facts["error"] = describe(exc)
        facts["error_type"] = type(exc).__name__
        return facts
    facts["imported"] = True
    facts["import_seconds"] = round(time.time() - started, 3)
    facts["version"] = getattr(torch, "__version__", None)
    version = getattr(torch, "version", None)
    facts["cuda_build"] = getattr(version, "cuda", None)
    facts["hip_build"] = getattr(version, "hip", None)
    facts["path"] = os.path.dirname(getattr(torch, "__file__", "") or "")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            facts["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
        except Exception:
            facts["cudnn"] = None
        try:
            facts["cuda_available"] = bool(torch.cuda.is_available())
        except Exception as exc:
            facts["cuda_available"] = False
            facts["cuda_error"] = describe(exc)
        try:
            facts["mps_available"] = bool(torch.backends.mps.is_available())
        except Exception:
            facts["mps_available"] = False
        facts["device_count"] = 0
        facts["arch_list"] = []
        devices = []
        if facts["cuda_available"]:
            try:
                facts["arch_list"] = list(torch.cuda.get_arch_list())
            except Exception:
                pass
            try:
                facts["device_count"] = int(torch.cuda.device_count())
            except Exception as exc:
                facts["cuda_error"] = describe(exc)
            devices = [device_facts(torch, i) for i in range(facts["device_count"])]
        facts["devices"] = devices
    facts["warnings"] = [str(w.message)[:2000] for w in caught][:20]
    return facts


def main():
    started = time.time()
    emit(BASE_MARKER, {"python": python_facts(), "packages": package_versions()})
    if "--no-torch" in sys.argv:
        torch = {"imported": False, "error": "skipped", "skipped": True}
    else:
        torch = torch_facts()
    torch["probe_seconds"] = round(time.time() - started, 3)
    emit(TORCH_MARKER, torch)
    want = set(a for a in sys.argv[1:] if not a.startswith("-"))
    emit(DISTS_MARKER, distributions(want))  # after torch: off the path of the first answers


if __name__ == "__main__":
    main()
