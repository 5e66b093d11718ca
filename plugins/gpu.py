"""Builtin plugin: the GPU the training will use, seen through the target's torch (torch.cuda's
device facts, `torch.cuda.get_arch_list()`, `nvidia-smi` for the driver).

Three checks: `gpu.cuda` (torch's build, CUDA, each device), `gpu.precision` (the command's
--mixed_precision against the device), `gpu.vram` (a rough memory estimate for the command).
"""

from __future__ import annotations

import re
import threading

from lora_doctor.hookspecs import hookimpl
from lora_doctor.model import Check, Finding, Severity

GIB = 1024 ** 3


# -- shared helpers -------------------------------------------------------------------------
class _Smi:
    """`nvidia-smi`, asked in the background: waited for only where torch cannot tell."""

    def __init__(self, env):
        self._result = None
        self._thread = threading.Thread(target=self._run, args=(env,), daemon=True, name="nvidia-smi")
        self._thread.start()

    def _run(self, env):
        from lora_doctor.target import nvsmi

        try:
            self._result = nvsmi.query(env)
        except Exception as exc:  # query never raises; keep the check alive regardless
            self._result = {"found": False, "ok": False, "error": str(exc), "gpus": []}

    def get(self, wait: bool = True) -> dict | None:
        if wait:
            self._thread.join()
        return self._result


def _torch(ctx) -> tuple[dict, dict]:
    facts = ctx.facts.get()
    return facts, facts.get("torch") or {}


def _platform(facts) -> str | None:
    return (facts.get("python") or {}).get("platform")


def _capability(dev) -> tuple[int, int] | None:
    cap = dev.get("capability")
    return (int(cap[0]), int(cap[1])) if cap and len(cap) == 2 else None


def _sm(cap) -> str:
    return f"sm_{cap[0]}{cap[1]}"


def _describe_device(dev) -> str:
    cap = _capability(dev)
    mem = dev.get("memory_bytes")
    parts = [f"{mem / GIB:.1f} GiB" if mem else None, f"compute capability {cap[0]}.{cap[1]}" if cap else None]
    return f"GPU {dev.get('index', 0)}: {dev.get('name', '?')} ({', '.join(p for p in parts if p)})"


def _install(ctx, facts, capability=None, smi=None) -> tuple[str, str]:
    from lora_doctor.target.torch_wheels import cuda_install_command

    packages = facts.get("packages") or {}
    torch = facts.get("torch") or {}
    python = (facts.get("python") or {}).get("executable") or ctx.python
    return cuda_install_command(python, _platform(facts), torch.get("version") or packages.get("torch"),
                                packages.get("torchvision"), capability,
                                (smi or {}).get("cuda_version"))


def _smi_detail(smi) -> str:
    if smi is None:
        return ""
    if not smi.get("found"):
        return "nvidia-smi is not on PATH: no NVIDIA driver seems to be installed."
    if smi.get("timed_out") or not smi.get("ok"):
        return f"nvidia-smi failed: {smi.get('error')}"
    gpus = ", ".join(g["name"] for g in smi.get("gpus", [])) or "no GPU listed"
    return f"nvidia-smi sees: {gpus} (driver {smi.get('driver_version')}, supports CUDA {smi.get('cuda_version')})."


def supports_arch(cap: tuple[int, int], arch_list) -> bool:
    """Whether kernels in `arch_list` run on `cap` (same-major cubins of lower minor, or older PTX)."""
    if not arch_list:
        return True
    for arch in arch_list:
        m = re.fullmatch(r"(sm|compute)_(\d+)(\d)[a-z]?", arch)
        if not m:
            continue
        major, minor = int(m.group(2)), int(m.group(3))
        if m.group(1) == "sm" and major == cap[0] and minor <= cap[1]:
            return True
        if m.group(1) == "compute" and (major, minor) <= cap:
            return True
    return False


# -- gpu.cuda -------------------------------------------------------------------------------
_IMPORT_CAUSES = (
    (re.compile(r"WinError 126|fbgemm\.dll|libomp", re.I), "os.windows_torch_dll_dependency_missing"),
    (re.compile(r"WinError 1455|paging file", re.I), "os.windows_paging_file_too_small"),
    (re.compile(r"NumPy 1\.x|_ARRAY_API|numpy\.core\.multiarray", re.I), "versions.numpy_abi_mismatch"),
)


def _torch_unusable(ctx, facts, torch, smi):
    """Findings for a torch that is missing, hangs, crashes or raises on import."""
    from lora_doctor.target.find import shell_python

    py = ctx.python
    if torch.get("timed_out"):
        yield Finding(Severity.ERROR, f"import torch hangs in {py}: {torch.get('error')}",
                      detail="Often a half-installed torch, a CUDA library on a stalled network drive, or an "
                             "antivirus scanning torch's DLLs.",
                      fix="Run the import by hand to see where it stops; reinstall torch if it never returns.",
                      fix_command=f'{shell_python(py, _platform(facts))} -c "import torch; print(torch.__version__)"')
        return
    error = torch.get("error") or ""
    if not (facts.get("packages") or {}).get("torch") and ("No module named" in error or not error):
        command, note = _install(ctx, facts, smi=smi.get(wait=True))
        yield Finding(Severity.ERROR, f"torch is not installed in {py}",
                      detail=note, fix="Install torch (a CUDA build) into the Python that trains.",
                      fix_command=command, cause="install.requirements_missing")
        return
    cause = next((c for rx, c in _IMPORT_CAUSES if rx.search(error)), None)
    command, note = _install(ctx, facts, smi=smi.get(wait=True))
    yield Finding(Severity.ERROR, f"import torch fails in {py}: {error.splitlines()[0] if error else 'unknown error'}",
                  detail=note, fix="Reinstall torch in the training venv (or fix what the error names).",
                  fix_command=command, cause=cause, facts={"error": error})


def check_cuda(ctx):
    smi = _Smi(ctx.env)
    facts, torch = _torch(ctx)
    if not (facts.get("probe") or {}).get("ok"):
        yield Finding(Severity.WARN, "GPU not checked: the target Python could not be inspected",
                      detail=(facts.get("probe") or {}).get("error") or "",
                      fix="See the Python check: point --python at the interpreter that runs training.")
        return
    if not torch.get("imported"):
        yield from _torch_unusable(ctx, facts, torch, smi)
        return
    version = torch.get("version")
    info = {k: torch.get(k) for k in ("version", "cuda_build", "hip_build", "cudnn", "cuda_available",
                                      "device_count", "arch_list", "path")}
    platform = _platform(facts)
    if not torch.get("cuda_build") and not torch.get("hip_build"):
        if platform == "darwin":
            mps = torch.get("mps_available")
            yield Finding(Severity.WARN if not mps else Severity.INFO,
                          f"torch {version} on macOS: no CUDA" + ("; Apple GPU (MPS) available" if mps else ""),
                          detail="sd-scripts is written for NVIDIA GPUs; on a Mac expect slow training and "
                                 "unsupported options (fp16 mixed precision, xformers, bitsandbytes).",
                          facts=info)
            return
        found = smi.get(wait=True)
        has_gpu = bool(found and found.get("ok") and found.get("gpus"))
        command, note = _install(ctx, facts, smi=found)
        detail = _smi_detail(found)
        if not has_gpu:
            detail += " A CUDA build needs an NVIDIA GPU and driver (on the CPU, training takes days)."
        yield Finding(Severity.ERROR, f"torch {version} is a CPU-only build: training cannot use a GPU",
                      detail=" ".join(x for x in (detail, note) if x).strip(),
                      fix="Replace it with a CUDA build of torch in the Python that trains.",
                      fix_command=command, cause="cuda.torch_cpu_build", facts={**info, "nvidia-smi": found})
        return
    build = f"ROCm {torch['hip_build']}" if torch.get("hip_build") else f"CUDA {torch.get('cuda_build')}"
    if not torch.get("cuda_available"):
        found = smi.get(wait=True)
        visible = (facts.get("python") or {}).get("cuda_visible_devices")
        detail = _smi_detail(found)
        fix = "Install or update the NVIDIA driver so that nvidia-smi lists the GPU."
        command = ""
        if visible is not None and visible.strip() in ("", "-1"):
            detail = f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU."
            fix, command = "Unset CUDA_VISIBLE_DEVICES (or set it to the GPU's index).", "unset CUDA_VISIBLE_DEVICES"
        elif found and found.get("ok") and found.get("cuda_version") and torch.get("cuda_build"):
            from lora_doctor.target.torch_wheels import version_tuple

            if version_tuple(found["cuda_version"])[:1] < version_tuple(torch["cuda_build"])[:1]:
                detail += (f" The driver supports CUDA {found['cuda_version']}, older than the CUDA "
                           f"{torch['cuda_build']} this torch was built for.")
                fix = "Update the NVIDIA driver, or install a torch build for the driver's CUDA:"
                command, _ = _install(ctx, facts, smi=found)
        yield Finding(Severity.ERROR, f"torch {version} ({build}) cannot use CUDA: no GPU available",
                      detail=" ".join(x for x in (torch.get("cuda_error"), detail) if x),
                      fix=fix, fix_command=command, facts={**info, "nvidia-smi": found})
        return
    cudnn = f", cuDNN {torch['cudnn']}" if torch.get("cudnn") else ""
    found = smi.get(wait=False)
    driver = f", driver {found['driver_version']}" if found and found.get("driver_version") else ""
    yield Finding(Severity.OK, f"torch {version} ({build}{cudnn}{driver})", facts=info)
    devices = torch.get("devices") or []
    if not devices:
        yield Finding(Severity.ERROR, "CUDA is available but torch lists no device",
                      fix="Check CUDA_VISIBLE_DEVICES and nvidia-smi.")
    for dev in devices:
        cap = _capability(dev)
        if dev.get("error") or cap is None:
            yield Finding(Severity.WARN, f"GPU {dev.get('index')}: cannot read its properties: {dev.get('error')}",
                          fix="Run nvidia-smi; a GPU in a bad state needs a reboot or driver reinstall.")
            continue
        yield Finding(Severity.OK, _describe_device(dev) + (", bf16" if cap >= (8, 0) else ", no bf16"),
                      facts={"device": dev})
        if not supports_arch(cap, torch.get("arch_list")):
            command, note = _install(ctx, facts, capability=cap, smi=found)
            newer = cap >= (10, 0)
            yield Finding(Severity.ERROR,
                          f"GPU {dev.get('index')} ({dev.get('name')}, {_sm(cap)}) is not supported by torch {version}",
                          detail=f"This build has kernels for {' '.join(torch.get('arch_list') or [])}; training "
                                 "fails with `CUDA error: no kernel image is available for execution on the device`. "
                                 + note,
                          fix=("Install a torch build made for CUDA 12.8 or newer (RTX 50 series)." if newer else
                               "Install a torch build that still supports this GPU (an older CUDA tag)."),
                          fix_command=command, facts={"arch_list": torch.get("arch_list")})


# -- gpu.precision --------------------------------------------------------------------------
def accelerate_mixed_precision(ctx) -> tuple[str | None, str]:
    """What accelerate itself asks for (launcher flag, env, config file) and where it came from."""
    launch = ctx.launch
    if launch is not None and launch.launcher == "accelerate":
        flag = launch.launcher_option("--mixed_precision")
        if flag:
            return flag, "`accelerate launch --mixed_precision`"
    env_value = ctx.env.get("ACCELERATE_MIXED_PRECISION")
    if env_value:
        return env_value, "ACCELERATE_MIXED_PRECISION"
    if launch is not None and launch.launcher == "accelerate":
        from lora_doctor.launch.accelerate_config import config_file

        path, _ = config_file(ctx)
        try:
            text = path.read_text("utf-8", "replace")
        except OSError:
            return None, ""
        m = re.search(r"^mixed_precision:\s*['\"]?(\w+)", text, re.M)
        if m:
            return m.group(1), f"the accelerate config {path}"
    return None, ""


def judged_devices(ctx, torch) -> list[dict]:
    """The devices training uses: GPU 0, or every visible GPU for a multi-GPU launch."""
    devices = [d for d in torch.get("devices") or [] if _capability(d)]
    launch = ctx.launch
    multi = False
    if launch is not None:
        multi = "--multi_gpu" in launch.launcher_args
        try:
            multi = multi or int(launch.launcher_option("--num_processes") or
                                 launch.launcher_option("--nproc_per_node") or 1) > 1
        except ValueError:
            pass
    return devices if multi else devices[:1]


def _edited(ctx, facts, changes, remove=()):
    from lora_doctor.launch.edit import corrected

    return corrected(ctx, changes, remove, platform=_platform(facts))


def check_precision(ctx):
    requested = ctx.option("mixed_precision")
    precision = str(requested or "no")
    asked, source = accelerate_mixed_precision(ctx)
    facts, torch = _torch(ctx)
    warned = requested is None and asked in ("fp16", "bf16")
    if warned:
        yield Finding(Severity.WARN, f"training will run in fp32: sd-scripts ignores accelerate's mixed precision "
                                     f"({asked} from {source})",
                      detail="The script passes its own --mixed_precision (default 'no') to accelerate, "
                             "so accelerate's setting never applies; fp32 needs about twice the VRAM.",
                      fix=f"Give the training script its own --mixed_precision {asked}.",
                      fix_command=_edited(ctx, facts, [("mixed_precision", asked)]))
    elif requested is not None and asked and asked != precision:
        yield Finding(Severity.INFO, f"accelerate asks for {asked} ({source}), but the script's "
                                     f"--mixed_precision {precision} is what applies")
    if not torch.get("imported"):
        yield Finding(Severity.INFO, f"mixed precision {precision}: not judged, torch cannot be inspected "
                                     "(see the GPU check)")
        return
    devices = judged_devices(ctx, torch)
    if not torch.get("cuda_available") or not devices:
        if precision == "fp16":
            found = None
            command = _edited(ctx, facts, [("mixed_precision", "no")])
            if _platform(facts) != "darwin":
                from lora_doctor.target import nvsmi

                found = nvsmi.query(ctx.env)
                if found.get("ok") and found.get("gpus"):
                    command, _ = _install(ctx, facts, smi=found)
            yield Finding(Severity.ERROR, "--mixed_precision fp16 needs a CUDA GPU, and this torch has none",
                          detail="accelerate stops with `fp16 mixed precision requires a GPU`, or half and float "
                                 "tensors meet on the CPU (`expected m1 and m2 to have the same dtype`).",
                          fix="Install a CUDA build of torch (see the GPU check); on a machine without an NVIDIA "
                              "GPU, train with --mixed_precision no.",
                          fix_command=command, cause="cuda.fp16_requires_gpu", facts={"nvidia-smi": found})
        elif precision == "bf16":
            yield Finding(Severity.WARN, "--mixed_precision bf16 without a CUDA GPU: training runs on the CPU",
                          fix="Install a CUDA build of torch (see the GPU check).")
        elif not warned:
            yield Finding(Severity.OK, f"mixed precision {precision} (no CUDA GPU to judge it against)")
        return
    old = [d for d in devices if _capability(d) < (8, 0)]
    if precision == "bf16" and old:
        names = ", ".join(f"{d.get('name')} ({_sm(_capability(d))})" for d in old)
        changes = [("mixed_precision", "fp16")] + ([("full_fp16", True)] if ctx.option("full_bf16") else [])
        yield Finding(Severity.ERROR, f"--mixed_precision bf16 on a GPU without bf16: {names}",
                      detail="bf16 needs compute capability 8.0 or newer (RTX 30xx/A100 and later); "
                             "torch.cuda.is_bf16_supported() is not proof on older cards (it counts emulation).",
                      fix="Train with --mixed_precision fp16" + (" and --full_fp16 instead of --full_bf16"
                                                                  if ctx.option("full_bf16") else "") + ".",
                      fix_command=_edited(ctx, facts, changes, remove=("full_bf16",)),
                      cause="cuda.bf16_unsupported_gpu")
        return
    gtx16 = [d for d in devices if re.search(r"GTX\s*16\d\d", d.get("name", ""), re.I)]
    if precision == "fp16" and gtx16:
        yield Finding(Severity.WARN, f"fp16 on {gtx16[0].get('name')}: GTX 16xx cards often produce NaN "
                                     "(black images, loss=nan) in half precision",
                      fix="Train in fp32 with --mixed_precision no (needs more VRAM) if the loss turns NaN.",
                      fix_command=_edited(ctx, facts, [("mixed_precision", "no")]),
                      cause="cuda.gtx16xx_half_precision_nan")
        return
    if precision == "fp16" and any(_capability(d) < (7, 0) for d in devices):
        yield Finding(Severity.INFO, "fp16 on a pre-Turing GPU saves memory but is slow (no tensor cores)")
        return
    dev = devices[0]
    if precision == "no" and warned:
        return
    if precision == "no" and all(_capability(d) >= (8, 0) for d in devices):
        yield Finding(Severity.INFO, f"training in fp32 (--mixed_precision not given); {dev.get('name')} "
                                     "supports bf16, which halves the memory",
                      fix="Add --mixed_precision bf16 unless you need fp32.",
                      fix_command=_edited(ctx, facts, [("mixed_precision", "bf16")]))
        return
    yield Finding(Severity.OK, f"mixed precision {precision} suits {dev.get('name')} ({_sm(_capability(dev))})")


# -- gpu.vram -------------------------------------------------------------------------------
def check_vram(ctx):
    from lora_doctor.target import vram

    script = ctx.script_name
    options = dict(ctx.options)
    est = vram.estimate(script, options)
    if est is None:
        yield Finding(Severity.OK, f"no memory estimate for {script or 'this command'} (covered: "
                                   "train_network, sdxl_train_network, train_db, fine_tune, sdxl_train)")
        return
    facts, torch = _torch(ctx)
    devices = judged_devices(ctx, torch) if torch.get("cuda_available") else []
    devices = [d for d in devices if d.get("memory_bytes")]
    assumptions = "Assumes " + ", ".join(est.assumptions) + "."
    if not devices:
        yield Finding(Severity.OK, f"needs roughly {est.gib:.0f} GiB of GPU memory (estimate; no CUDA GPU to "
                                   "compare with)", detail=assumptions)
        return
    dev = min(devices, key=lambda d: d["memory_bytes"])
    have = dev["memory_bytes"] / GIB
    info = {"estimate_gib": est.gib, "gpu_gib": round(have, 1), "assumptions": est.assumptions}
    if est.gib <= have * 0.85:
        yield Finding(Severity.OK, f"needs roughly {est.gib:.0f} GiB of {have:.0f} GiB on {dev.get('name')} "
                                   "(rough estimate)", detail=assumptions, facts=info)
        return
    changes = []
    half = "bf16" if all(_capability(d) >= (8, 0) for d in devices) else "fp16"
    for change in vram.savings(script, options, half):
        if vram.estimate(script, options).gib <= have * 0.85:
            break
        changes.append(change)
        options[change[0]] = change[1]
    after = vram.estimate(script, options).gib
    advice = ", ".join(f"--{n}" + ("" if v is True else f" {v}") for n, v in changes)
    if est.gib > have:
        yield Finding(Severity.WARN, f"likely out of GPU memory: needs roughly {est.gib:.0f} GiB, "
                                     f"{dev.get('name')} has {have:.0f} GiB (rough estimate)",
                      detail=assumptions + (f" With {advice}: about {after:.0f} GiB." if changes else ""),
                      fix=(f"Lower the memory use: {advice}." if changes else
                           "Lower the resolution or the batch size, or train on a GPU with more memory."),
                      fix_command=_edited(ctx, facts, changes) if changes else "",
                      cause="cuda.oom", facts=info)
    else:
        yield Finding(Severity.INFO, f"tight on GPU memory: needs roughly {est.gib:.0f} of {have:.0f} GiB "
                                     "(rough estimate)", detail=assumptions,
                      fix=f"If it runs out of memory: {advice}." if changes else "", facts=info)


@hookimpl
def lora_doctor_register_checks(register):
    """The GPU checks: torch's CUDA build and devices, mixed precision, a memory estimate."""
    register(Check(id="gpu.cuda", title="GPU", run=check_cuda))
    register(Check(id="gpu.precision", title="Mixed precision", run=check_precision, applies="command"))
    register(Check(id="gpu.vram", title="GPU memory", run=check_vram, applies="command"))
