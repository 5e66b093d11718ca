"""Inspect a base model on disk (a single file or a diffusers folder) and how it fits the script."""

from __future__ import annotations

import difflib
import json
import os
import re
from pathlib import Path

from lora_doctor.launch.edit import corrected
from lora_doctor.model import Finding, Severity
from lora_doctor.checkpoint.kind import ModelKind, classify, script_generation
from lora_doctor.checkpoint.safetensors_header import HeaderError, read_header, sniff

MODEL_EXTS = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".sft")
PICKLE_EXTS = (".ckpt", ".pt", ".pth", ".bin")
# diffusers components sd-scripts' from_pretrained does not load (it passes tokenizer=None, safety_checker=None).
NOT_LOADED = {"tokenizer", "tokenizer_2", "safety_checker", "feature_extractor", "image_encoder"}
WEIGHT_RE = re.compile(r".*\.(safetensors|bin|ckpt|pt)$|.*\.index\.json$")
MODEL_SUFFIX_RE = re.compile(r"\.(safe_?tensors?|ckpt|pth?|bin|sft)$", re.IGNORECASE)
WINDOWS_PATH_RE = re.compile(r"^[A-Za-z]:[\\/]|^\\\\")


def looks_like_path(value: str) -> bool:
    """A value sd-scripts/diffusers cannot mean as a repo id: a path, a file name, a drive letter."""
    return (value.startswith(("/", "./", "../", "~", ".\\", "..\\")) or "\\" in value
            or bool(WINDOWS_PATH_RE.match(value)) or value.count("/") > 1
            or bool(MODEL_SUFFIX_RE.search(value)))


def near_misses(path: Path) -> tuple[Path | None, list[str]]:
    """The nearest existing folder above `path` and names in it that look like what was meant."""
    folder = path.parent
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        return None, []
    try:
        names = sorted(os.listdir(folder))[:5000]
    except OSError:
        return folder, []
    wanted = path.name if folder == path.parent else path.relative_to(folder).parts[0]
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.6)
    lowered = [n for n in names if n.lower() == wanted.lower() and n not in close]
    if not close and not lowered and folder == path.parent:
        close = [n for n in names if n.lower().endswith(MODEL_EXTS)][:5]
    return folder, lowered + close


def not_found(value: str, path: Path, ctx, what: str, cause: str, option: str) -> Finding:
    """The error for a path that does not exist, with where it was looked for and near misses."""
    folder, names = near_misses(path)
    detail = [f"looked for: {path}", f"working directory: {ctx.cwd}"]
    if WINDOWS_PATH_RE.match(value) and os.name != "nt":
        detail.append("this is a Windows path, but training runs on " + os.uname().sysname)
    if names and folder is not None:
        detail.append(f"in {folder}: " + ", ".join(names))
    elif folder is not None and folder != path.parent:
        detail.append(f"the nearest existing folder is {folder}")
    fix = f"Give --{option} the full path of the existing {what}"
    command = ""
    if names and folder is not None:
        fix += f" (did you mean {folder / names[0]}?)"
        if len(names) == 1 and ctx.option(option) is not None:
            command = corrected(ctx, [(option, str(folder / names[0]))])
    return Finding(Severity.ERROR, f"{what} not found: {value}", detail="\n".join(detail), fix=fix + ".",
                   fix_command=command, cause=cause, facts={"resolved": str(path), "cwd": str(ctx.cwd)})


def inspect_file(path: Path, ctx) -> tuple[list[Finding], ModelKind | None]:
    """Findings for a single-file checkpoint and what kind of model it is (None if unreadable)."""
    size = path.stat().st_size
    facts = {"path": str(path), "bytes": size}
    if path.suffix.lower() in PICKLE_EXTS:
        return inspect_pickle(path, facts), None
    try:
        header = read_header(path)
    except HeaderError as exc:
        return [Finding(Severity.ERROR, f"the model file is not a valid checkpoint: {exc}",
                        detail=f"file: {path} ({size:,} bytes)",
                        fix="Download the model again (from its model page, with the browser's download button "
                            "or `hf download`), then check that the size matches the one on the page.",
                        cause="model.file_corrupt", facts=facts)], None
    kind = classify(header)
    facts.update(kind=kind.name, tensors=len(header.tensors))
    shown = f"{size / 1e9:.2f} GB" if size >= 1e8 else f"{size / 1e6:.1f} MB"
    summary = f"{kind.label}: {path.name} ({shown}, {len(header.tensors)} tensors)"
    return [Finding(Severity.OK, summary, facts=facts)], kind


def inspect_pickle(path: Path, facts: dict) -> list[Finding]:
    """.ckpt/.pt files are pickles (torch.load runs code from them); check they are not truncated."""
    import zipfile

    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError as exc:
        return [Finding(Severity.ERROR, f"cannot read the model file: {exc.strerror or exc}", facts=facts,
                        fix="Check the file's permissions.", cause="model.file_corrupt")]
    bad = ""
    if head.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(path) as zf:
                zf.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            bad = f"a damaged zip archive ({exc}; an interrupted download?)"
    elif not head[:1] == b"\x80":
        bad = sniff(head) or "neither a PyTorch zip checkpoint nor a pickle"
    if bad:
        return [Finding(Severity.ERROR, f"the model file is not a valid checkpoint: it is {bad}",
                        detail=f"file: {path} ({facts['bytes']:,} bytes)",
                        fix="Download the model again and check its size against the model page.",
                        cause="model.file_corrupt", facts=facts)]
    return [Finding(Severity.WARN, f"{path.name} is a pickle checkpoint ({path.suffix}): loading it runs code "
                    "from the file, and its model type cannot be checked without loading it",
                    fix="Prefer the .safetensors download of the same model (safe to load, checked here).",
                    facts=facts)]


def fit_findings(kind: ModelKind, ctx, where: str) -> list[Finding]:
    """Does a model of this kind fit the training script and --v2? `where` names the model."""
    script = ctx.script_name
    gen = script_generation(script)
    v2 = bool(ctx.option("v2"))
    out: list[Finding] = []
    if kind.name == "lora":
        return [Finding(Severity.ERROR, f"{where} is a LoRA (a small add-on network), not a base model",
                        fix="Pass the checkpoint the LoRA is trained on (e.g. an SD1.5 or SDXL .safetensors) as "
                            "--pretrained_model_name_or_path; a LoRA to continue from goes in --network_weights.",
                        cause="model.lora_file_as_base_model")]
    if kind.name == "vae":
        return [Finding(Severity.ERROR, f"{where} is a VAE only, not a full checkpoint",
                        fix="Pass the full checkpoint as --pretrained_model_name_or_path and this file as --vae.")]
    if kind.name == "component":
        return [Finding(Severity.ERROR, f"{where} holds a single diffusers component, not a full checkpoint",
                        fix="Pass the whole diffusers folder (with model_index.json) or a full single-file checkpoint.",
                        cause="model.invalid_model_path_or_repo_id")]
    if kind.name == "sdxl_refiner":
        return [Finding(Severity.ERROR, f"{where} is the SDXL refiner, which cannot be trained as a base model",
                        fix="Use the SDXL base checkpoint (e.g. sd_xl_base_1.0.safetensors) with sdxl_train_network.py.")]
    if kind.inpaint:
        out.append(Finding(Severity.ERROR, f"{where} is an inpainting model (9 input channels); sd-scripts "
                           "builds a 4-channel UNet and fails to load it",
                           fix="Train on the normal (non-inpainting) checkpoint of the same model."))
    if kind.generation == "other":
        if gen in ("sd12", "sdxl"):
            out.append(Finding(Severity.ERROR, f"{where} is a {kind.label}; {script}.py trains SD1.x/2.x/SDXL",
                               fix="Use the training script made for this model family (flux_/sd3_ scripts)."))
        return out
    if gen not in ("sd12", "sdxl"):  # no command, or a script this check does not know
        return out
    if kind.generation == "sdxl" and gen == "sd12":
        out.append(Finding(Severity.ERROR, f"{where} is an SDXL model, but {script}.py trains SD1.x/2.x",
                           fix="Train SDXL with sdxl_train_network.py (same options; drop --v2/--v_parameterization).",
                           fix_command=corrected(ctx, remove=("v2", "v_parameterization"), script="sdxl_" + script + ".py"),
                           cause="model.sdxl_checkpoint_with_sd15_script"))
    elif kind.generation == "sd12" and gen == "sdxl":
        plain = script[len("sdxl_"):] + ".py"
        out.append(Finding(Severity.ERROR, f"{where} is an SD1.x/2.x model, but {script}.py trains SDXL",
                           fix=f"Use an SDXL base checkpoint, or train this model with {plain}.",
                           fix_command=corrected(ctx, script=plain),
                           cause="model.sd15_checkpoint_with_sdxl_script"))
    elif kind.name == "sd2" and not v2:
        out.append(Finding(Severity.ERROR, f"{where} is a Stable Diffusion 2.x model, but --v2 is not set",
                           detail="sd-scripts does not detect SD2 by itself; without --v2 the weights do not load.",
                           fix="Add --v2 (and --v_parameterization for 768-v models such as SD2.x 768).",
                           fix_command=corrected(ctx, [("v2", True)]), cause="model.v2_flag_mismatch"))
    elif kind.name == "sd1" and v2:
        out.append(Finding(Severity.ERROR, f"{where} is a Stable Diffusion 1.x model, but --v2 is set",
                           fix="Remove --v2 (and --v_parameterization).",
                           fix_command=corrected(ctx, remove=("v2", "v_parameterization")),
                           cause="model.v2_flag_mismatch"))
    elif kind.name == "unknown":
        out.append(Finding(Severity.WARN, f"{where}: cannot tell which model this is from its tensor names",
                           fix="Check that this is a Stable Diffusion checkpoint matching the script."))
    return out


def _read_json(path: Path):
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None


def inspect_folder(folder: Path, ctx) -> tuple[list[Finding], ModelKind | None]:
    """A diffusers folder: model_index.json, the component folders it names and their weights."""
    index = folder / "model_index.json"
    if not index.is_file():
        files = sorted(p.name for p in folder.glob("*") if p.suffix.lower() in MODEL_EXTS)[:5]
        fix = "Point --pretrained_model_name_or_path at the model file itself" + (
            f" (e.g. {folder / files[0]})" if files else ", or at a diffusers folder that has model_index.json") + "."
        return [Finding(Severity.ERROR, f"{folder} is a folder without model_index.json (not a diffusers model)",
                        detail=("model files in it: " + ", ".join(files)) if files else "",
                        fix=fix, cause="model.invalid_model_path_or_repo_id")], None
    data = _read_json(index)
    if not isinstance(data, dict):
        return [Finding(Severity.ERROR, f"{index} is not valid JSON", cause="model.file_corrupt",
                        fix="Download the model folder again.")], None
    cls = str(data.get("_class_name", ""))
    out: list[Finding] = []
    missing, broken = [], []
    for name, spec in data.items():
        if name.startswith("_") or name in NOT_LOADED or not (isinstance(spec, list) and spec and spec[0]):
            continue
        sub = folder / name
        if not sub.is_dir():
            missing.append(f"{name}/ (folder missing)")
            continue
        if name == "scheduler":
            if not (sub / "scheduler_config.json").is_file():
                missing.append(f"{name}/scheduler_config.json")
            continue
        if not (sub / "config.json").is_file():
            missing.append(f"{name}/config.json")
        weights = [p for p in sub.iterdir() if WEIGHT_RE.match(p.name) and p.is_file()]
        if not weights:
            missing.append(f"{name}/ weights (no .safetensors/.bin file)")
        for w in weights:
            if w.suffix == ".safetensors":
                try:
                    read_header(w)
                except HeaderError as exc:
                    broken.append(f"{name}/{w.name}: {exc}")
    incomplete = _incomplete(folder)
    if missing or broken or incomplete:
        detail = [f"missing: {m}" for m in missing] + [f"broken: {b}" for b in broken]
        detail += [f"unfinished download: {p}" for p in incomplete[:5]]
        out.append(Finding(Severity.ERROR, f"the diffusers folder {folder} is incomplete",
                           detail="\n".join(detail),
                           fix="Download the model again completely (e.g. `hf download <repo> --local-dir <folder>`), "
                               "or use a single-file .safetensors checkpoint.",
                           cause="model.file_corrupt", facts={"path": str(folder)}))
    kind = _folder_kind(folder, cls)
    if not out:
        out.append(Finding(Severity.OK, f"diffusers model ({cls or 'unknown pipeline'}): {folder}",
                           facts={"path": str(folder), "kind": kind.name if kind else None}))
    return out, kind


def _folder_kind(folder: Path, cls: str) -> ModelKind | None:
    if "XL" in cls:
        return ModelKind("sdxl_refiner" if "Img2Img" in cls and not (folder / "text_encoder").is_dir() else "sdxl")
    config = _read_json(folder / "unet" / "config.json")
    dim = config.get("cross_attention_dim") if isinstance(config, dict) else None
    inpaint = isinstance(config, dict) and config.get("in_channels") == 9
    if dim == 768:
        return ModelKind("sd1", inpaint)
    if dim == 1024:
        return ModelKind("sd2", inpaint)
    if dim == 2048:
        return ModelKind("sdxl", inpaint)
    if cls == "StableDiffusionPipeline":
        return ModelKind("sd", inpaint)
    return None


def _incomplete(folder: Path) -> list[Path]:
    """`*.incomplete` files a download left: in the folder (hf download --local-dir keeps them
    under .cache/huggingface/download) or in the HF cache's blobs/ next to a snapshot."""
    places = [folder / ".cache" / "huggingface" / "download"]
    if folder.parent.name == "snapshots":
        places.append(folder.parent.parent / "blobs")
    found: list[Path] = []
    for place in places:
        if place.is_dir():
            found += sorted(place.rglob("*.incomplete"))[:20]
    return found


def _network_args(ctx) -> dict[str, str]:
    value = ctx.option("network_args")
    items = value if isinstance(value, list) else [value] if isinstance(value, str) else []
    return {k.strip(): v.strip() for k, _, v in (str(i).partition("=") for i in items) if k}


def _flag(value) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1"))


def _fmt(x: float) -> str:
    return f"{x:g}"


def lora_fit_findings(ctx, path: Path, header) -> list[Finding]:
    """Does the LoRA of --network_weights fit --network_dim/--network_alpha/--network_module and the
    script? sd-scripts (train_network.py) builds the network from the options, then loads the file
    into it with strict=False: another rank stops with a size mismatch, another family loads nothing
    without an error, another alpha is silently replaced by the file's while training scales by the
    option's."""
    from lora_doctor.checkpoint.kind import script_generation
    from lora_doctor.checkpoint.lora import lora_info

    info = lora_info(path, header)
    name, out = path.name, []
    facts = {"path": str(path), "family": info.family, "ranks": dict(info.ranks), "alpha": info.alpha,
             "metadata": {k: v for k, v in info.metadata.items() if k in ("ss_network_module", "ss_network_dim",
                                                                          "ss_network_alpha", "ss_network_args")}}
    module = str(ctx.option("network_module") or "")
    from_weights = _flag(ctx.option("dim_from_weights"))
    args = _network_args(ctx)
    gen = script_generation(ctx.script_name)
    keys = header.tensors.keys()
    sdxl_file = any(k.startswith(("lora_te1_", "lora_te2_")) for k in keys)
    sd_file = any(k.startswith("lora_te_") for k in keys)
    if (gen == "sd12" and sdxl_file) or (gen == "sdxl" and sd_file and not sdxl_file):
        trained = "SDXL" if sdxl_file else "SD1.x/2.x"
        out.append(Finding(Severity.ERROR, f"--network_weights {name} is a LoRA for {trained}, but "
                                           f"{ctx.script_name}.py trains {'SD1.x/2.x' if gen == 'sd12' else 'SDXL'}",
                           detail="Its layers do not exist in this model: loading fails with a size mismatch, or "
                                  "nothing is loaded.",
                           fix="Continue it with the script and base model it was trained on, or drop --network_weights.",
                           cause="model.network_weights_shape_mismatch", facts=facts))
        return out
    if module.startswith("networks.") and info.family in ("loha", "lokr", "oft", "ia3"):
        trained_with = info.module or "lycoris.kohya"
        out.append(Finding(Severity.ERROR, f"--network_weights {name} is a LyCORIS {info.family.upper()} network, "
                                           f"but --network_module={module} builds a plain LoRA: none of its weights load",
                           detail="sd-scripts loads the file with strict=False, so the mismatch is not an error: it "
                                  "prints the missing and unexpected keys and trains a new network from scratch.",
                           fix=f"Use --network_module={trained_with} with the --network_args it was trained with "
                               f"({info.metadata.get('ss_network_args', 'see its metadata')}).",
                           cause="model.network_weights_shape_mismatch", facts=facts))
        return out
    if info.module and module and info.module != module:
        out.append(Finding(Severity.WARN, f"--network_weights {name} was trained with --network_module={info.module}; "
                                          f"this command uses {module}",
                           fix=f"Use --network_module={info.module} to continue it.", facts=facts))
    rank, alpha = info.rank, info.alpha
    given_dim = ctx.option("network_dim")
    try:
        dim = int(str(given_dim)) if given_dim not in (None, True) else 4  # networks.lora's default
        net_alpha = float(str(ctx.option("network_alpha"))) if ctx.option("network_alpha") not in (None, True) else 1.0
    except ValueError:
        return out  # a malformed number: the options check reports it
    default = "" if given_dim not in (None, True) else " (the default)"
    if rank is not None and not from_weights and (set(info.ranks) != {dim}):
        uniform = len(info.ranks) == 1
        shown = f"rank {rank}" if uniform else f"ranks {min(info.ranks)}–{max(info.ranks)} (resized?)"
        changes = [("network_dim", rank)] + ([("network_alpha", _fmt(alpha))] if alpha is not None else [])
        out.append(Finding(Severity.ERROR, f"--network_weights {name} has {shown}, but --network_dim is {dim}{default}",
                           detail=f"train_network.py stops while loading it: `size mismatch for …lora_down.weight: "
                                  f"copying a param with shape torch.Size([{rank}, …]) from checkpoint, the shape in "
                                  f"current model is torch.Size([{dim}, …])`.",
                           fix=(f"Set --network_dim={rank}" + (f" --network_alpha={_fmt(alpha)}" if alpha is not None
                                                                 else "") + " to continue this LoRA, or add "
                                "--dim_from_weights (rank and alpha taken from the file).") if uniform else
                               "Add --dim_from_weights: the file's modules have different ranks.",
                           fix_command=corrected(ctx, changes) if uniform else corrected(ctx, [("dim_from_weights", True)]),
                           cause="model.network_weights_shape_mismatch", facts=facts))
        return out
    conv_dim = args.get("conv_dim")
    if info.conv_ranks and not from_weights:
        conv_rank = info.conv_ranks.most_common(1)[0][0]
        if conv_dim is None:
            out.append(Finding(Severity.WARN, f"--network_weights {name} has 3×3 conv layers (rank {conv_rank}), but "
                                              "--network_args sets no conv_dim: those layers are not loaded or trained",
                               fix=f"Add conv_dim={conv_rank} (and its conv_alpha) to --network_args, or "
                                   "--dim_from_weights.", facts=facts))
        elif conv_dim.isdigit() and set(info.conv_ranks) != {int(conv_dim)}:
            out.append(Finding(Severity.ERROR, f"--network_weights {name} has 3×3 conv layers of rank {conv_rank}, "
                                               f"but --network_args sets conv_dim={conv_dim}",
                               detail="train_network.py stops with a size mismatch while loading it.",
                               fix=f"Set conv_dim={conv_rank} in --network_args, or use --dim_from_weights.",
                               cause="model.network_weights_shape_mismatch", facts=facts))
    if alpha is not None and not from_weights and abs(alpha - net_alpha) > 1e-3:
        shown_alpha = "" if ctx.option("network_alpha") not in (None, True) else " (the default)"
        out.append(Finding(Severity.WARN, f"--network_weights {name} has alpha {_fmt(alpha)}, but --network_alpha is "
                                          f"{_fmt(net_alpha)}{shown_alpha}",
                           detail=f"Training scales the updates by --network_alpha/--network_dim = {_fmt(net_alpha)}/"
                                  f"{dim}, but loading the file replaces the saved alpha with {_fmt(alpha)}: the new "
                                  f"LoRA then applies at {_fmt(alpha / net_alpha)}× the strength it was trained at.",
                           fix=f"Set --network_alpha={_fmt(alpha)} to continue it as it was trained.",
                           fix_command=corrected(ctx, [("network_alpha", _fmt(alpha))]), facts=facts))
    if not out:
        what = f"rank {rank}, alpha {_fmt(alpha)}" if rank is not None and alpha is not None else info.family
        out.append(Finding(Severity.OK, f"--network_weights {name} ({what}) fits "
                                        + ("--dim_from_weights" if from_weights else "--network_dim/--network_alpha"),
                           facts=facts))
    return out
