"""Builtin plugin: dataset mistakes the log cannot tell apart, named from the command's folders.

sd-scripts prints the same lines whether --train_data_dir does not exist or points at the folder
that holds the images (it only looks at subfolders), says nothing when --reg_data_dir does not
exist or is the image folder itself, and "No caption file found" both for images without captions
and for captions saved with another extension; the folders themselves tell, when the command is
known (`lora-doctor run`, or a diagnosis given the command).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from lora_doctor.hookspecs import hookimpl
from lora_doctor.launch.edit import corrected
from lora_doctor.model import Diagnosis

NO_DATA = "No data found"
NO_REG = "no regularization images"
MAX_ENTRIES = 5000  # a folder is judged from its first entries; a dataset root is never this big
# sd-scripts globs these exact suffixes (lower or upper case, not mixed), non-recursively.
IMAGE_SUFFIXES = {s for ext in ("png", "jpg", "jpeg", "webp", "bmp") for s in ("." + ext, "." + ext.upper())}
_REPEATS = re.compile(r"^-?\d+(_|$)")
REF = "https://github.com/kohya-ss/sd-scripts/blob/main/library/config_util.py"


def _entries(folder: Path) -> list[os.DirEntry]:
    out = []
    try:
        with os.scandir(folder) as it:
            for entry in it:
                out.append(entry)
                if len(out) >= MAX_ENTRIES:
                    break
    except OSError:
        pass
    return out


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _has_image(folder: str) -> bool:
    return any(Path(e.name).suffix in IMAGE_SUFFIXES for e in _entries(Path(folder)) if not _is_dir(e))


def classify(folder: Path) -> tuple[str, str] | None:
    """(cause id, what the folder shows) for a --train_data_dir that gave no data, or None."""
    if not folder.exists():
        return "dataset.train_data_dir_not_found", f"{folder} does not exist"
    if not folder.is_dir():
        return "dataset.train_data_dir_not_found", f"{folder} is a file, not a folder"
    entries = _entries(folder)
    subdirs = [e for e in entries if _is_dir(e)]
    images = [e.name for e in entries if not _is_dir(e) and Path(e.name).suffix in IMAGE_SUFFIXES]
    with_repeats = [e for e in subdirs if _REPEATS.match(e.name)]
    if images and not with_repeats:
        return "dataset.train_data_dir_not_parent", f"{folder} holds {len(images)} image(s) directly and no <repeats>_<name> subfolder"
    if subdirs and not with_repeats:
        names = ", ".join(sorted(e.name for e in subdirs)[:5])
        return "dataset.folder_without_repeats_prefix", f"the subfolders of {folder} ({names}) have no <repeats>_ prefix"
    if with_repeats and not any(_has_image(e.path) for e in with_repeats):
        return "dataset.no_images", f"no .png/.jpg/.jpeg/.webp/.bmp file directly inside the subfolders of {folder}"
    if not entries:
        return "dataset.train_data_dir_not_parent", f"{folder} is empty"
    return None


TEXT = {
    "dataset.train_data_dir_not_found": (
        "--train_data_dir does not exist",
        "sd-scripts treats a missing --train_data_dir like an empty one: it trains nothing, logs \"No data found\" "
        "and exits with code 0.",
        ["Fix the path given to --train_data_dir (check it with ls / dir; prefer an absolute path)."]),
    "dataset.train_data_dir_not_parent": (
        "No data found: --train_data_dir is the image folder, not its parent",
        "sd-scripts only reads the <repeats>_<name> subfolders of --train_data_dir; images placed directly in it "
        "are ignored.",
        ["Point --train_data_dir at the folder that contains the <repeats>_<name> folders, or move the images "
         "into a subfolder such as 10_mychar."]),
    "dataset.folder_without_repeats_prefix": (
        "Image folders lack the numeric repeats prefix",
        "sd-scripts skips every subfolder whose name does not start with a number and an underscore.",
        ["Rename the image folders to <repeats>_<name>, e.g. 10_mychar."]),
    "dataset.no_images": (
        "The dataset folders hold no images of a supported type",
        "sd-scripts only picks up .png/.jpg/.jpeg/.webp/.bmp files (not mixed-case extensions), directly inside "
        "each <repeats>_<name> folder.",
        ["Convert the images to PNG/JPEG/WebP and place them directly in the <repeats>_<name> folder."]),
}


def _saw(context, text: str) -> bool:
    log = getattr(context, "log", None)
    lines = [*(getattr(log, "errors", None) or []), *(getattr(log, "warnings", None) or []),
             *(getattr(log, "tail", None) or [])]
    return any(text in line for line in lines)


def _reg_dir_missing(context) -> Diagnosis | None:
    """After "no regularization images": the --reg_data_dir that does not exist, or that is the image folder itself."""
    value = context.option("reg_data_dir")
    if not isinstance(value, str) or not value or not _saw(context, NO_REG):
        return None
    folder = Path(os.path.expanduser(value))
    if getattr(context, "command_from_log", False):
        return None  # a pasted log's folder may exist on the machine that trained; the signatures judge its name
    if folder.is_dir():
        entries = _entries(folder)
        images = [e.name for e in entries if not _is_dir(e) and Path(e.name).suffix in IMAGE_SUFFIXES]
        if not images or any(_REPEATS.match(e.name) for e in entries if _is_dir(e)):
            return None
        return Diagnosis(signature_id="dataset.reg_data_dir_not_parent",
                         title="--reg_data_dir is the regularization image folder itself, not its parent",
                         confidence=0.9, evidence=[f"--reg_data_dir: {folder} holds {len(images)} image(s) directly "
                                                   "and no <repeats>_<class> subfolder", NO_REG],
                         why="sd-scripts reads only the <repeats>_<class> subfolders of --reg_data_dir; images placed "
                             "directly in it are ignored, so training ran without regularization.",
                         fix=["Point --reg_data_dir at the parent of a <repeats>_<class> folder, or move the images "
                              "into a subfolder such as 1_person."],
                         fix_command=corrected(context, [("reg_data_dir", str(folder.parent))])
                         if _REPEATS.match(folder.name) else "",
                         refs=[REF], severity="warn", source="plugin no_data_diagnose")
    return Diagnosis(signature_id="dataset.reg_data_dir_not_found",
                     title="The regularization folder does not exist; training ran without it",
                     confidence=0.9, evidence=[f"--reg_data_dir: {folder} does not exist", NO_REG],
                     why="sd-scripts treats a missing --reg_data_dir like an empty one and trains without "
                         "regularization images; the only trace is the usual 'no regularization images' warning.",
                     fix=["Fix the --reg_data_dir path (the parent of <repeats>_<class> folders), or drop the option."],
                     refs=[REF], severity="warn", source="plugin no_data_diagnose")


NO_CAPTION = "No caption file found for"
CAPTION_SUFFIXES = (".txt", ".caption", ".cap", ".tags", ".text")


def _caption_extension(context) -> Diagnosis | None:
    """After "No caption file found": captions that exist next to the images with another extension."""
    value = context.option("train_data_dir")
    if not isinstance(value, str) or not value or not _saw(context, NO_CAPTION) or getattr(context, "command_from_log", False):
        return None
    ext = context.option("caption_extension") or context.option("caption_extention") or ".caption"
    if not isinstance(ext, str):
        return None
    folder = Path(os.path.expanduser(value))
    missing = other = 0
    found_ext: dict[str, int] = {}
    for sub in _entries(folder):
        if not _is_dir(sub) or not _REPEATS.match(sub.name):
            continue
        names = {e.name for e in _entries(Path(sub.path)) if not _is_dir(e)}
        for name in names:
            stem, suffix = os.path.splitext(name)
            if suffix not in IMAGE_SUFFIXES or stem + ext in names:
                continue
            missing += 1
            alt = next((s for s in CAPTION_SUFFIXES if s != ext and stem + s in names), None)
            if alt:
                other += 1
                found_ext[alt] = found_ext.get(alt, 0) + 1
    if not missing or other * 2 < missing:
        return None
    alt = max(found_ext, key=found_ext.get)
    return Diagnosis(signature_id="dataset.caption_extension_mismatch",
                     title=f"The captions are {alt} files, but --caption_extension is {ext}",
                     confidence=0.95, evidence=[f"{other} of {missing} images without a {ext} caption have a {alt} file "
                                                f"next to them ({folder})"],
                     why="sd-scripts reads only captions with --caption_extension (default .caption); the caption files "
                         "that exist were skipped and those images trained with no caption (or the class token).",
                     fix=[f"Add --caption_extension={alt} (GUI: 'Caption file extension')."],
                     fix_command=corrected(context, [("caption_extension", alt)]),
                     refs=[REF], source="plugin no_data_diagnose")


@hookimpl
def lora_doctor_diagnose(failure, postmortem):
    """After "No data found" / "no regularization images", look at the command's dataset folders."""
    if failure is not None and failure.exception and not failure.is_wrapper:
        return []  # a traceback explains the run; the signatures handle it
    if not hasattr(postmortem, "option") or postmortem.option("dataset_config"):
        return []
    value = postmortem.option("train_data_dir")
    if not isinstance(value, str) or not value or not _saw(postmortem, NO_DATA):
        found = [d for d in (_reg_dir_missing(postmortem), _caption_extension(postmortem)) if d is not None]
        return found
    folder = Path(os.path.expanduser(value))
    found = classify(folder)
    if found and found[0] == "dataset.train_data_dir_not_found" and getattr(postmortem, "command_from_log", False):
        # A pasted log's folder missing here says nothing about the machine that trained; its name still does.
        if not _REPEATS.match(folder.name):
            return []
        found = ("dataset.train_data_dir_not_parent", f"{folder.name} is named like an image folder (<repeats>_<name>)")
    if found is None:
        return []
    cause, seen = found
    title, why, fix = TEXT[cause]
    fix_command = ""
    if cause == "dataset.train_data_dir_not_parent" and _REPEATS.match(folder.name):
        fix_command = corrected(postmortem, [("train_data_dir", str(folder.parent))])
    return [Diagnosis(signature_id=cause, title=title, confidence=0.9, evidence=[f"--train_data_dir: {seen}"],
                      why=why, fix=list(fix), fix_command=fix_command, refs=[REF], source="plugin no_data_diagnose")]
