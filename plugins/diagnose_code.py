"""Builtin plugin: diagnoses a pattern cannot express.

- CUDA out of memory: reads "Tried to allocate X", the total/free figures and the command's batch
  size, resolution and precision, and says what to change first (with the corrected command);
- NaN loss: what most likely made it NaN (learning rate, fp16, a GTX 16xx card);
- NaN latents: the VAE in half precision, judged from which trainer ran (SDXL, or not said) rather
  than from the word "sdxl" somewhere in the log;
- a process killed without a traceback: out of RAM, the Windows paging file, or a signal;
- a latent cache (.npz) that cannot be read: delete the cache, not the images;
- a JSON dataset config that does not parse: JSON's rules, not TOML's quoting;
- training run by a global / user-site Python although the project has its own venv;
- a quoted Windows path ending in a backslash in the command (it swallows the next options).
"""

from __future__ import annotations

import re
from pathlib import Path

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


def _all_failures(context) -> list:
    from lora_doctor.diagnose.logparse import chain

    log = getattr(context, "log", None)
    return [f for top in (getattr(log, "failures", None) or []) for f in chain(top)]


def _log_lines(context) -> list[str]:
    """The lines the parser kept: error and warning records, the lines around each failure, the tail."""
    log = getattr(context, "log", None)
    if log is None:
        return []
    lines = [*(getattr(log, "errors", None) or []), *(getattr(log, "warnings", None) or [])]
    for excerpt in (getattr(log, "excerpts", None) or {}).values():
        lines += excerpt
    return lines + list(getattr(log, "tail", None) or [])


def _with_priority(d: Diagnosis, priority: int) -> Diagnosis:
    d.priority = priority  # read by the host (default 50) to rank it among the signatures
    return d


_SDXL_WORD = re.compile(r"sdxl|SDXL|Sdxl")
_OTHER_ARCH = re.compile(r"(?:flux|sd3|lumina|hunyuan|chroma|anima)_\w*train", re.IGNORECASE)
_SD1_ENTRY = {"train_network", "train_db", "fine_tune", "train_textual_inversion"}


def _stem(path: str) -> str:
    return Path(path.replace("\\", "/")).stem


def diagnose_nan_latents(failure, context) -> Diagnosis | None:
    """"NaN detected in latents": the VAE overflowed in half precision. Named SDXL's unless the run is
    shown to be SD1.x/2.x (its entry script) or another architecture."""
    fails = _all_failures(context)
    hit = next((f for f in fails if "NaN detected in latents" in f.message), None)
    line = hit.message.split("\n", 1)[0] if hit else next(
        (x for x in _log_lines(context) if "NaN detected in latents" in x), None)
    if line is None:
        return None
    files = [fr.file for f in fails for fr in f.frames]
    script = getattr(getattr(context, "launch", None), "script_name", "") or ""
    named = " ".join(files + [script] + [f.message for f in fails if f.is_wrapper])
    if _OTHER_ARCH.search(named):
        return None
    sdxl = bool(_SDXL_WORD.search(named))
    entry = {_stem(fr.file) for f in fails for fr in f.frames if fr.function == "<module>"}
    if not sdxl and ((entry & _SD1_ENTRY) or script in _SD1_ENTRY):
        return None  # an SD1.x/2.x run: its VAE rarely overflows; the cause was not established
    d = Diagnosis(signature_id="model.sdxl_vae_fp16_nan", title="The SDXL VAE produced NaN in half precision",
                  confidence=0.8 if sdxl else 0.55, evidence=[str(line).strip()[:300]],
                  why="NaN latents while caching come from the VAE run in fp16/bf16: the original SDXL VAE "
                      "overflows in half precision" + ("" if sdxl else " (the log does not name the trainer; "
                      "this is the usual case)") + ".",
                  fix=["Add --no_half_vae to keep the VAE in fp32 (GUI: 'No half VAE').",
                       "Or pass an fp16-safe VAE with --vae (madebyollin/sdxl-vae-fp16-fix).",
                       "If it names one image every time with the VAE in fp32, open that image: it may be broken."],
                  fix_command=corrected(context, [("no_half_vae", True)]), source="plugin diagnose_code")
    return _with_priority(d, 40)


_NPZ = re.compile(r"[^\s'\"]+\.npz\b")
_NPZ_FRAMES = re.compile(r"disk_cached_latents|load_latents_from_disk|_default_load_latents")


def diagnose_latent_cache(failure, context) -> Diagnosis | None:
    """A latent cache file (.npz next to the images) that cannot be read or is from another version."""
    evidence = None
    for f in _all_failures(context):
        if "npz is old format" in f.message or re.search(r"latents\S* not found in \S+\.npz", f.message) or (
                f.exception and not f.is_wrapper and any(_NPZ_FRAMES.search(fr.function) for fr in f.frames)):
            evidence = f"{f.exception}: {f.message}".split("\n", 1)[0]
            break
    if evidence is None:
        evidence = next((x for x in _log_lines(context) if "Error loading file:" in x and ".npz" in x), None)
    if evidence is None:
        return None
    npz = _NPZ.search(evidence)
    d = Diagnosis(signature_id="dataset.image_corrupt",
                  title="A cached latent file (.npz) next to the images cannot be used",
                  confidence=0.85, evidence=[evidence.strip()[:300]],
                  why="With --cache_latents_to_disk sd-scripts stores each image's latents in a .npz file beside it "
                      "and reuses it on the next run. A file cut short (an interrupted caching run, a full disk) or "
                      "written by another sd-scripts version cannot be loaded; the image itself is fine.",
                  fix=[f"Delete the cache file{' ' + npz.group(0) if npz else ''} - or all .npz files in the image "
                       "folders - and start again: sd-scripts recreates them (Linux: `find <train_data_dir> -name "
                       "'*.npz' -delete`; PowerShell: `Get-ChildItem <train_data_dir> -Recurse -Filter *.npz | "
                       "Remove-Item`).",
                       "If it comes back, check the free disk space, or cache in memory instead (drop "
                       "--cache_latents_to_disk)."],
                  refs=["https://github.com/kohya-ss/sd-scripts/blob/main/library/strategy_base.py"],
                  source="plugin diagnose_code")
    return _with_priority(d, 70)


def diagnose_json_dataset_config(failure, context) -> Diagnosis | None:
    """A JSON dataset config that does not parse gets JSON's rules (the signature's text is TOML's)."""
    line = next((x for x in _log_lines(context) if "Error on parsing JSON config file" in x
                 or "JSON 形式の設定ファイルの読み込みに失敗しました" in x), None)
    if line is None:
        f = next((f for f in _all_failures(context) if f.exception_name == "JSONDecodeError"
                  and any(fr.function == "load_user_config" for fr in f.frames)), None)
        line = f"{f.exception}: {f.message}".split("\n", 1)[0] if f else None
    if line is None:
        return None
    d = Diagnosis(signature_id="config.dataset_toml_syntax", title="The dataset config (JSON) does not parse",
                  confidence=0.9, evidence=[line.strip()[:300]],
                  why="The dataset config is a .json file, and JSON's syntax is strict.",
                  fix=["Open the JSON file at the line and column the error names (JSONDecodeError: 'Expecting "
                       "...: line N column M').",
                       "Use double quotes for every key and string, no trailing comma after the last item, no "
                       "comments.",
                       "Windows paths: double every backslash (\"C:\\\\train\\\\10_cat\") or use forward "
                       "slashes (\"C:/train/10_cat\").",
                       "Or write the config as TOML (dataset.toml), the format sd-scripts documents."],
                  refs=["https://github.com/kohya-ss/sd-scripts/blob/main/docs/config_README-en.md",
                        "https://www.json.org/json-en.html"], source="plugin diagnose_code")
    return _with_priority(d, 70)


_GLOBAL_SITE = re.compile(
    r"\\Programs\\Python\\Python3\d+\\lib\\site-packages\\"       # Windows python.org install for one user
    r"|\\AppData\\Roaming\\Python\\Python3\d+\\site-packages\\"   # Windows user site (pip install --user)
    r"|^[A-Za-z]:\\Python3\d+\\lib\\site-packages\\"             # Windows install for all users
    r"|/\.local/lib/python3\.\d+/site-packages/|/\.local/bin/accelerate$",  # Linux/macOS user site
    re.IGNORECASE)
_VENV_SITE = re.compile(r"[/\\](?:venv|\.venv|env)[/\\](?:lib|Lib|Scripts|bin)[/\\]")
_PROJECT = re.compile(r"kohya_ss|kohya-ss|sd-scripts|sd_scripts|lora-scripts|LoRA_Easy_Training_Scripts|kohya-trainer",
                      re.IGNORECASE)
_MISSING_PACKAGE = re.compile(r"^No [\w\-]+ / |No module named|DLL load failed|cannot import name")


def diagnose_global_python(failure, context) -> Diagnosis | None:
    """A package missing or broken while the traceback runs through the global or user-site Python of a
    project that has its own venv: the venv was not used."""
    fails = _all_failures(context)
    files = [fr.file for f in fails for fr in f.frames]
    global_files = [x for x in files if _GLOBAL_SITE.search(x)]
    if not global_files or any(_VENV_SITE.search(x) for x in files):
        return None
    if not any(_PROJECT.search(x) for x in files + [f.message for f in fails if f.is_wrapper]):
        return None
    import_failure = any(f.exception_name in ("ImportError", "ModuleNotFoundError") or _MISSING_PACKAGE.search(f.message)
                         for f in fails if f.exception and not f.is_wrapper)
    cut_in_import = any(not f.exception and f.frames and _GLOBAL_SITE.search(f.frames[-1].file)
                        for f in fails)  # a traceback cut while importing a package of the global Python
    if not (import_failure or cut_in_import):
        return None
    d = Diagnosis(signature_id="install.venv_not_activated",
                  title="Training ran with the global Python, not the project's venv",
                  confidence=0.8, evidence=[f"package loaded from {global_files[0]}"],
                  why="The traceback runs through packages of the Python installed for the whole system or user "
                      "(AppData\\Local\\Programs\\Python, ~/.local), not through the venv of the sd-scripts / "
                      "kohya_ss folder: `accelerate` or `python` was found on PATH outside the venv. That Python "
                      "lacks, or has other versions of, the packages the set-up installed.",
                  fix=["Activate the venv before launching: `venv\\Scripts\\activate` (Windows) or `source "
                       "venv/bin/activate` (Linux), or start through the GUI's own launcher (gui.bat / gui.sh).",
                       "Or call the venv's tools explicitly: `venv\\Scripts\\accelerate launch ...`.",
                       "Remove packages installed by mistake into the global Python or with `pip install --user`, so "
                       "they cannot be picked up again."],
                  refs=["https://docs.python.org/3/library/venv.html",
                        "https://github.com/bmaltais/kohya_ss/blob/master/README.md"],
                  source="plugin diagnose_code")
    return _with_priority(d, 78)


_BIG_MODEL_TRAINER = re.compile(r"(?:flux|sd3|lumina|hunyuan_image|chroma)\w*_train\w*\.py|flux_train\.py", re.IGNORECASE)
_STEPS = re.compile(r"steps:\s+\d+%")


def diagnose_access_violation_loading(failure, context) -> Diagnosis | None:
    """Windows access violation, no traceback, before the first step, while a FLUX/SD3-size model loads."""
    exit_ = context.exit
    if exit_ is None or not (exit_.code in (3221225477, -1073741819) or "0xC0000005" in (exit_.ntstatus or "")):
        return None
    if failure is not None and failure.exception and not failure.is_wrapper:
        return None
    fails = _all_failures(context)
    script = getattr(getattr(context, "launch", None), "script", "") or ""
    named = " ".join([script] + [f.message for f in fails if f.is_wrapper])
    if not _BIG_MODEL_TRAINER.search(named) or any(_STEPS.search(x) for x in _log_lines(context)):
        return None
    d = Diagnosis(signature_id="os.cpu_out_of_memory",
                  title="The process crashed while loading a very large model: most likely out of RAM",
                  confidence=0.6, evidence=[f"exit: {exit_.description}", named.strip()[:200]],
                  why="FLUX / SD3-class models need 24-64 GB of system RAM (plus page file) while they load. On "
                      "Windows an allocation that fails at that point often ends the process with an access "
                      "violation (0xC0000005) and no Python traceback.",
                  fix=["Add RAM or let Windows manage a larger page file on a fast drive.",
                       "Load less at once: an fp8 model file, --fp8_base, --blocks_to_swap, or train a LoRA instead "
                       "of a full fine-tune; close other programs."],
                  source="plugin diagnose_code")
    return _with_priority(d, 30)


_SWALLOWED = re.compile(r'"[ \t]+--[a-z]\w+')


def diagnose_swallowed_options(failure, context) -> Diagnosis | None:
    """A command value that contains '" --option': a quoted Windows path ending in a backslash."""
    launch = getattr(context, "launch", None)
    if launch is None or getattr(context, "command_from_log", False):
        return None  # a command read back from a pasted log: the signature reads the text instead
    bad = next((a for a in (getattr(launch, "argv", None) or []) if isinstance(a, str) and _SWALLOWED.search(a)), None)
    if bad is None:
        return None
    d = Diagnosis(signature_id="args.trailing_backslash_escapes_quote",
                  title="A quoted Windows path ending in a backslash swallowed the next options",
                  confidence=0.9, evidence=[f"argument: {bad[:200]}"],
                  why="The argument holds a quote followed by more options: the backslash before its closing quote "
                      "escaped it, so the options after it became part of the path.",
                  fix=["Remove the trailing backslash before the closing quote (\"D:\\data\" or \"D:/data/\")."],
                  source="plugin diagnose_code")
    return _with_priority(d, 72)


@hookimpl
def lora_doctor_diagnose(failure, postmortem):
    """CUDA OOM figures, NaN loss and latents, killed processes, latent caches, JSON configs, the wrong
    Python, swallowed options: computed from the log and the command."""
    out = []
    for fn in (diagnose_oom, diagnose_nan, diagnose_killed, diagnose_nan_latents, diagnose_latent_cache,
               diagnose_json_dataset_config, diagnose_global_python, diagnose_access_violation_loading,
               diagnose_swallowed_options):
        d = fn(failure, postmortem)
        if d is not None:
            out.append(d)
    return out
