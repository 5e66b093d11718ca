"""Read a training dataset's layout the way sd-scripts does (sd-scripts train_network.py, train, and library/config_util.py): folders or TOML.

Produces the datasets and subsets sd-scripts would build, plus findings about the layout
itself (missing folders, folders it would ignore, TOML errors). Reads only; never writes.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from lora_doctor.model import Finding, Severity

# glob("*<ext>") per extension: case-sensitive on Linux/macOS file systems, so `.Jpg` is not found.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".PNG", ".JPG", ".JPEG", ".WEBP", ".BMP")
# Extensions people use that sd-scripts never picks up (avif/jxl only with optional plugins).
OTHER_IMAGE_EXTENSIONS = (".gif", ".tif", ".tiff", ".avif", ".jxl", ".heic", ".heif", ".jfif")
DEFAULT_CAPTION_EXTENSION = ".caption"
STANDALONE = "lora-doctor dataset"  # Launch.launcher of `lora-doctor dataset DIR …`


@dataclass
class Settings:
    """Per-dataset values (subset → dataset → general → command line → default)."""

    resolution: tuple[int, int] | None
    enable_bucket: bool = False
    min_bucket_reso: int = 256
    max_bucket_reso: int = 1024
    bucket_reso_steps: int = 64
    bucket_no_upscale: bool = False
    batch_size: int = 1


@dataclass
class Subset:
    """One image folder sd-scripts trains on."""

    image_dir: Path
    num_repeats: int = 1
    class_tokens: str | None = None
    is_reg: bool = False
    caption_extension: str = DEFAULT_CAPTION_EXTENSION
    caption_separator: str = ","
    random_crop: bool = False
    alpha_mask: bool = False
    enable_wildcard: bool = False
    where: str = ""  # how to name it in messages: the folder, or the TOML path of the subset
    # where caption_extension was set: "" the command line (or the default), else the dataset TOML's
    # table, e.g. "dataset.toml [general]" (its fix goes there, not to the command line)
    caption_extension_from: str = ""
    caption_extension_written: str = ""  # as written, when it has no leading dot


@dataclass
class Dataset:
    settings: Settings
    subsets: list[Subset] = field(default_factory=list)


@dataclass
class Layout:
    """What sd-scripts would train on, and what is wrong with how it is laid out."""

    mode: str  # "folders", "config", "fine-tune"
    datasets: list[Dataset] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    fatal: bool = False  # sd-scripts stops before training (bad TOML, bad resolution …)
    adds_caption_dot: bool | None = None  # the checkout adds a missing "." to caption_extension


class OptionError(ValueError):
    """An option value sd-scripts would reject: the message names the option."""


def opt_int(options, name: str, default: int | None) -> int | None:
    value = options.get(name)
    if value is None or value is False:
        return default
    try:
        return int(str(value).strip())
    except ValueError:
        raise OptionError(f"--{name}={value} is not a whole number") from None


def opt_flag(options, name: str) -> bool:
    value = options.get(name)
    if isinstance(value, str):
        return value.strip().lower() not in ("", "0", "false", "no")
    return bool(value)


def parse_resolution(value) -> tuple[int, int] | None:
    """'512' or '512,768' (or an int / [w, h] from TOML) -> (w, h); raises OptionError like sd-scripts."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise OptionError(f"resolution must be 'size' or 'width,height', not {value!r}")
    if isinstance(value, int):
        return value, value
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return int(value[0]), int(value[1])
        raise OptionError(f"resolution must be 'size' or 'width,height', not {value!r}")
    parts = [p.strip() for p in str(value).split(",")]
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise OptionError(f"--resolution={value} must be 'size' or 'width,height' (e.g. 512 or 512,768)") from None
    if len(nums) == 1:
        return nums[0], nums[0]
    if len(nums) == 2:
        return nums[0], nums[1]
    raise OptionError(f"--resolution={value} must be 'size' or 'width,height' (e.g. 512 or 512,768)")


def caption_extension(options) -> str:
    """--caption_extension, or the old misspelled --caption_extention sd-scripts still honours."""
    value = options.get("caption_extention") or options.get("caption_extension") or DEFAULT_CAPTION_EXTENSION
    return str(value)


def settings_from_options(options) -> Settings:
    return Settings(
        resolution=parse_resolution(options.get("resolution")),
        enable_bucket=opt_flag(options, "enable_bucket"),
        min_bucket_reso=opt_int(options, "min_bucket_reso", 256),
        max_bucket_reso=opt_int(options, "max_bucket_reso", 1024),
        bucket_reso_steps=opt_int(options, "bucket_reso_steps", 64),
        bucket_no_upscale=opt_flag(options, "bucket_no_upscale"),
        batch_size=opt_int(options, "train_batch_size", 1),
    )


def repeats_of(name: str) -> tuple[int | None, str]:
    """sd-scripts' `extract_dreambooth_params`: ('10_sks dog') -> (10, 'sks dog'); None if no int."""
    tokens = name.split("_")
    try:
        return int(tokens[0]), "_".join(tokens[1:])
    except ValueError:
        return None, ""


def list_dir(folder: Path) -> tuple[list[os.DirEntry], str]:
    """The entries of a folder, or ([], why it cannot be read)."""
    try:
        with os.scandir(folder) as it:
            return list(it), ""
    except FileNotFoundError:
        return [], "does not exist"
    except NotADirectoryError:
        return [], "is a file, not a folder"
    except PermissionError:
        return [], "cannot be read (permission denied)"
    except OSError as exc:
        return [], f"cannot be read ({exc.strerror or exc})"


def is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows symlinks; a symlink loop is simply not a folder
    except OSError:
        return False


def image_files(entries: list[os.DirEntry]) -> list[str]:
    """File names sd-scripts' glob would find (no dot-files, exact-case extensions), sorted."""
    return sorted(e.name for e in entries if not e.name.startswith(".") and e.name.endswith(IMAGE_EXTENSIONS))


def near_miss_images(entries: list[os.DirEntry]) -> list[str]:
    """Image-looking files sd-scripts skips: mixed-case or unsupported extensions."""
    out = []
    for e in entries:
        ext = os.path.splitext(e.name)[1]
        if not ext or e.name.endswith(IMAGE_EXTENSIONS):
            continue
        if ext.lower() in (x.lower() for x in IMAGE_EXTENSIONS) or ext.lower() in OTHER_IMAGE_EXTENSIONS:
            out.append(e.name)
    return sorted(out)


def _similar(path: Path) -> str:
    """' (did you mean …?)' naming a sibling with a close name, when there is one."""
    parent = path.parent
    try:
        names = [p.name for p in parent.iterdir() if p.is_dir()]
    except OSError:
        return ""
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.75)
    return f" (did you mean {parent / close[0]}?)" if close else ""


def _subset_defaults(options, is_reg: bool) -> dict:
    return dict(is_reg=is_reg, caption_extension=caption_extension(options),
                caption_separator=str(options.get("caption_separator") or ","),
                random_crop=opt_flag(options, "random_crop"), alpha_mask=opt_flag(options, "alpha_mask"),
                enable_wildcard=opt_flag(options, "enable_wildcard"))


def scan_folder_mode(root: Path, options, is_reg: bool, layout: Layout, shown: str) -> list[Subset]:
    """The subsets of a train/reg folder: immediate `<repeats>_<name>` subfolders (sd-scripts library/config_util.py, generate_dreambooth_subsets_config_by_subdirs)."""
    option = "--reg_data_dir" if is_reg else "--train_data_dir"
    entries, why = list_dir(root)
    if why:
        cause = ("dataset.reg_data_dir_not_found" if is_reg else "dataset.train_data_dir_not_found") \
            if why == "does not exist" else None
        sev = Severity.WARN if is_reg and why == "does not exist" else Severity.ERROR
        consequence = ("sd-scripts trains without regularization images and says nothing." if is_reg else
                       "sd-scripts finds no data, logs `No data found.` and exits with code 0 without training.")
        layout.findings.append(Finding(
            sev, f"{option} {shown} {why}{_similar(root) if why == 'does not exist' else ''}",
            detail=consequence,
            fix=f"Point {option} at the folder that holds the `<repeats>_<name>` image folders "
                "(an absolute path avoids working-directory surprises).",
            cause=cause, facts={"path": str(root)}))
        return []
    subsets: list[Subset] = []
    direct = image_files([e for e in entries if not is_dir(e)])
    for entry in sorted((e for e in entries if is_dir(e)), key=lambda e: e.name):
        repeats, tokens = repeats_of(entry.name)
        sub_path = Path(entry.path)
        if repeats is None:
            _ignored_folder(layout, sub_path, option)
            continue
        if repeats < 1:
            layout.findings.append(Finding(
                Severity.WARN, f"folder {entry.name!r} has {repeats} repeats: sd-scripts skips it without a message",
                fix=f"Rename it with a repeat count of 1 or more, e.g. '1_{tokens}'.",
                cause="dataset.folder_name_malformed", facts={"folder": str(sub_path)}))
            continue
        subsets.append(Subset(sub_path, repeats, tokens, where=str(sub_path), **_subset_defaults(options, is_reg)))
    if direct and not subsets:
        example = f"{root}{os.sep}10_{root.name or 'subject'}"
        repeats, _ = repeats_of(root.name)
        fix = (f"Use the parent folder: {option}={root.parent}" if repeats and repeats > 0 else
               f"Move the images into a subfolder named `<repeats>_<name>`, e.g. {example}, and keep "
               f"{option}={root}")
        layout.findings.append(Finding(
            Severity.ERROR, f"{option} {shown} holds {len(direct)} images directly; sd-scripts only reads "
                            "`<repeats>_<name>` subfolders, so it finds no data",
            detail="sd-scripts logs `No data found.` and exits with code 0 without training.",
            fix=fix, cause="dataset.train_data_dir_not_parent", facts={"path": str(root)}))
    elif direct:
        layout.findings.append(Finding(
            Severity.WARN, f"{len(direct)} images directly in {shown} are ignored (only subfolders are read), "
                           f"e.g. {direct[0]}",
            fix="Move them into one of the `<repeats>_<name>` subfolders if they should be trained.",
            cause="dataset.train_data_dir_not_parent", facts={"path": str(root)}))
    return subsets


def _ignored_folder(layout: Layout, folder: Path, option: str) -> None:
    entries, _ = list_dir(folder)
    images = image_files([e for e in entries if not is_dir(e)])
    name = folder.name
    if images:
        fixed_name = _repaired_name(name)
        if fixed_name:
            fixed = folder.with_name(fixed_name)
            layout.findings.append(Finding(
                Severity.ERROR, f"folder {name!r} ({len(images)} images) is ignored: sd-scripts needs "
                                "`<repeats>_<name>` with an underscore after the number",
                detail=f"sd-scripts logs `ignore directory without repeats: {name}` and skips its images.",
                fix=f"Rename it to {fixed.name!r}.", fix_command=_rename_command(folder, fixed),
                cause="dataset.folder_name_malformed", facts={"folder": str(folder)}))
        else:
            fixed = folder.with_name(f"10_{name}")
            layout.findings.append(Finding(
                Severity.ERROR, f"folder {name!r} ({len(images)} images) has no repeats prefix: sd-scripts skips it",
                detail=f"sd-scripts logs `ignore directory without repeats: {name}` and trains without these images.",
                fix=f"Rename it to `<repeats>_{name}`, e.g. {fixed.name!r} (10 repeats per epoch).",
                fix_command=_rename_command(folder, fixed),
                cause="dataset.folder_without_repeats_prefix", facts={"folder": str(folder)}))
    else:
        layout.findings.append(Finding(
            Severity.INFO, f"folder {name!r} in the dataset folder is not a dataset folder (sd-scripts warns "
                           "`ignore directory without repeats` and skips it)",
            fix=f"Keep outputs, logs and other folders outside {option}.",
            cause="dataset.stray_folder_in_image_dir", facts={"folder": str(folder)}))


def _repaired_name(name: str) -> str:
    """'10 sks' / '10-sks' / '10sks' / 'sks_10' -> '10_sks'; '' when the name has no number to use."""
    m = re.match(r"^(\d+)[\s.\-]*(\S.*)$", name)
    if m:
        return f"{int(m.group(1))}_{m.group(2)}"
    m = re.match(r"^(.*\S)[\s_\-](\d+)$", name)
    if m and int(m.group(2)) <= 100:  # 'photos 2023' is a year, not repeats
        return f"{int(m.group(2))}_{m.group(1)}"
    return ""


def _rename_command(old: Path, new: Path) -> str:
    from lora_doctor.launch.edit import quote, shell_platform

    return f"mv {quote(str(old))} {quote(str(new))}" if shell_platform() != "win32" else \
        f'ren "{old}" "{new.name}"'


def caption_dot_rule(ctx, layout: Layout) -> None:
    """A caption_extension without its leading dot: sd-scripts v0.6.5 and later add it (the subset
    constructors in library/train_util.py); older ones use it as written. When the checkout cannot
    be read, the rule of every version since May 2023 applies."""
    from lora_doctor.launch.script_options import adds_caption_dot

    subsets = [s for d in layout.datasets for s in d.subsets
               if s.caption_extension and not s.caption_extension.startswith(".")]
    if not subsets:
        return
    adds = adds_caption_dot(ctx.sd_scripts_dir)
    layout.adds_caption_dot = adds
    for s in subsets:
        s.caption_extension_written = s.caption_extension
        if adds is not False:
            s.caption_extension = "." + s.caption_extension


def scan_layout(ctx) -> Layout:
    """The datasets sd-scripts would build from the command's folder options (a --dataset_config
    is read by dataset/config.py; dataset/scan.py chooses)."""
    layout = _scan_layout(ctx)
    caption_dot_rule(ctx, layout)
    return layout


def _scan_layout(ctx) -> Layout:
    options = ctx.options
    layout = Layout("folders")
    try:
        settings = settings_from_options(options)
    except OptionError as exc:
        layout.findings.append(Finding(Severity.ERROR, str(exc), fix="Fix the option value.",
                                       cause="args.invalid_choice"))
        layout.fatal = True
        return layout
    if options.get("in_json"):
        layout.mode = "fine-tune"
        layout.findings.append(Finding(
            Severity.INFO, "--in_json (fine-tuning metadata) is used: images listed in the metadata are not checked",
            facts={"in_json": str(options.get("in_json"))}))
    train = ctx.path_option("train_data_dir")
    dataset = Dataset(settings)
    if train is not None:
        dataset.subsets += scan_folder_mode(train, options, False, layout, str(options.get("train_data_dir")))
    reg = ctx.path_option("reg_data_dir")
    if reg is not None:
        dataset.subsets += scan_folder_mode(reg, options, True, layout, str(options.get("reg_data_dir")))
    layout.datasets.append(dataset)
    return layout


def load_config_file(path: Path) -> tuple[dict | None, Finding | None]:
    """Read a dataset TOML/JSON like `config_util.load_user_config`; (data, None) or (None, finding)."""
    shown = str(path)
    if not path.is_file():
        why = "is a folder, not a file" if path.is_dir() else "does not exist"
        return None, Finding(Severity.ERROR, f"--dataset_config {shown} {why}{_similar(path) if not path.exists() else ''}",
                             detail="sd-scripts stops with `ValueError: file not found / ファイルが見つかりません`.",
                             fix="Point --dataset_config at the dataset .toml file (an absolute path is safest).",
                             cause="config.dataset_toml_not_found", facts={"path": shown})
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return None, Finding(Severity.ERROR, f"--dataset_config {shown} cannot be read: {exc.strerror or exc}",
                             fix="Check the file's permissions.", facts={"path": shown})
    suffix = path.suffix.lower()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, Finding(Severity.ERROR, f"{shown} is not UTF-8 text", cause="config.dataset_toml_syntax",
                             fix="Save the file as UTF-8 (in Notepad: Save as → Encoding: UTF-8).",
                             facts={"path": shown})
    if suffix == ".json":
        try:
            return json.loads(text), None
        except json.JSONDecodeError as exc:
            return None, Finding(Severity.ERROR, f"{shown} is not valid JSON: {exc}",
                                 fix="Fix the JSON syntax at that line.", cause="config.dataset_toml_syntax",
                                 facts={"path": shown})
    if suffix != ".toml":
        return None, Finding(Severity.ERROR, f"--dataset_config {shown}: sd-scripts reads only .toml or .json files",
                             detail="sd-scripts stops with `ValueError: not supported config file format`.",
                             fix="Rename the file to .toml (or .json) to match its content.", facts={"path": shown})
    from lora_doctor.tomlcompat import TOMLDecodeError, loads

    try:
        return loads(text), None
    except TOMLDecodeError as exc:
        backslash = "\\" in text and any(w in str(exc).lower() for w in ("escape", "hex", "unicode"))
        fix = ("Windows paths in double quotes need doubled backslashes: write 'C:\\data\\img' in single "
               "quotes, \"C:\\\\data\\\\img\", or use forward slashes \"C:/data/img\"." if backslash
               else "Fix the TOML syntax at that line (strings in quotes, [[datasets]] / [[datasets.subsets]] tables).")
        return None, Finding(Severity.ERROR, f"{shown} is not valid TOML: {exc}",
                             detail="sd-scripts logs `Error on parsing TOML config file` and stops.",
                             fix=fix, cause="config.dataset_toml_syntax", facts={"path": shown})
