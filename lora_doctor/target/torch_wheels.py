"""The exact command that installs a CUDA build of torch into the target interpreter.

sd-scripts' README (v0.10.1, "Windows Installation") installs `torch==2.6.0 torchvision==0.21.0` from
`https://download.pytorch.org/whl/cu124`, and torch 2.8.0 with cu128 for RTX 50 series GPUs. For another
installed torch whose CUDA builds we know, we keep its version and pick a tag PyTorch's index carries
for that release, within what the driver supports (CUDA minor-version compatibility: a driver runs
every toolkit of its CUDA major) and what the GPU needs (sm_120 needs cu128; PyTorch's cu128 builds
dropped sm_50–sm_61 from TORCH_CUDA_ARCH_LIST). For a newer torch we do not invent a tag: the command
is the README's pair and the note links PyTorch's selector for keeping that version.
"""

from __future__ import annotations

from packaging.version import InvalidVersion, Version

INDEX = "https://download.pytorch.org/whl/"
SELECTOR = "https://pytorch.org/get-started/locally/"
README_TORCH, README_TORCHVISION = "2.6.0", "0.21.0"

# torch minor -> CUDA tags on PyTorch's index, for the releases we know.
TAGS = {
    (1, 12): ("cu113", "cu116"), (1, 13): ("cu116", "cu117"), (2, 0): ("cu117", "cu118"),
    (2, 1): ("cu118", "cu121"), (2, 2): ("cu118", "cu121"), (2, 3): ("cu118", "cu121"),
    (2, 4): ("cu118", "cu121", "cu124"), (2, 5): ("cu118", "cu121", "cu124"),
    (2, 6): ("cu118", "cu124", "cu126"), (2, 7): ("cu118", "cu126", "cu128"),
    (2, 8): ("cu126", "cu128", "cu129"), (2, 9): ("cu126", "cu128", "cu130"),
}
PREFERENCE = ("cu124", "cu126", "cu128", "cu121", "cu118", "cu129", "cu130", "cu117", "cu116", "cu113")


def version_tuple(version: str | None) -> tuple[int, ...]:
    """The release numbers of a version through packaging ('2.6.0+cu124' -> (2, 6, 0)); () if unknown."""
    try:
        return Version(version).release if version else ()
    except InvalidVersion:
        return ()


def public(version: str | None) -> str:
    """'2.6.0+cpu' -> '2.6.0' (packaging's public version; the text before '+' when it is not PEP 440)."""
    try:
        return Version(version).public if version else ""
    except InvalidVersion:
        return (version or "").split("+", 1)[0]


def _tag_cuda(tag: str) -> tuple[int, int]:
    digits = tag[2:]
    return int(digits[:-1]), int(digits[-1])


def choose_tag(torch_version: str | None, capability: tuple[int, int] | None = None,
               driver_cuda: str | None = None) -> str:
    """The CUDA tag to install; a release not in TAGS gets the README's torch's tags."""
    release = version_tuple(torch_version)[:2]
    tags = TAGS.get(release) or TAGS[version_tuple(README_TORCH)[:2]]
    ordered = sorted(tags, key=lambda t: PREFERENCE.index(t) if t in PREFERENCE else 99)
    fits = list(ordered)
    if driver_cuda and version_tuple(driver_cuda):
        major = version_tuple(driver_cuda)[0]  # CUDA minor-version compatibility: within one major
        fits = [t for t in fits if _tag_cuda(t)[0] <= major] or fits
    if capability and capability >= (10, 0):
        fits = [t for t in fits if _tag_cuda(t) >= (12, 8)] or [max(tags, key=_tag_cuda)]
    elif capability and capability < (7, 0):
        fits = [t for t in fits if _tag_cuda(t) < (12, 8)] or [min(tags, key=_tag_cuda)]
    return fits[0]


def torchvision_for(torch_version: str, installed: str | None) -> str:
    """`==X` for the installed torchvision, else the series that pairs with torch (2.6 -> 0.21)."""
    if installed:
        return "==" + public(installed)
    release = version_tuple(torch_version)
    if len(release) >= 2 and release[0] == 2:
        return f"==0.{release[1] + 15}.*"
    if len(release) >= 2 and release[0] == 1:
        return f"==0.{release[1] + 1}.*"
    return ""


def cuda_install_command(python: str, platform: str | None, torch_version: str | None,
                         torchvision_version: str | None = None, capability=None,
                         driver_cuda: str | None = None) -> tuple[str, str]:
    """(command lines, a note) that replace the installed torch by a CUDA build of the same version.

    Without an installed torch, for a torch too old for sd-scripts, or one whose CUDA builds are
    not known here, the README's pair.
    """
    from lora_doctor.target.find import shell_python

    py = shell_python(python, platform)
    version = public(torch_version)
    rtx50 = bool(capability) and tuple(capability) >= (10, 0)
    unknown = bool(version) and version_tuple(version)[:2] not in TAGS and version_tuple(version) > version_tuple(README_TORCH)
    if not version or unknown or version_tuple(version) < (2, 6) or (rtx50 and version_tuple(version) < (2, 7)):
        newer = version if unknown else ""
        tag = choose_tag(README_TORCH, capability, driver_cuda)
        if rtx50:
            version, tv, tag = "2.8.0", "==0.23.0", "cu128"  # sd-scripts README: RTX 50 needs 2.8 / cu128
        else:
            version, tv = README_TORCH, "==" + README_TORCHVISION
        note = ("sd-scripts' README: RTX 50 series GPUs need torch 2.8.0 with CUDA 12.8." if rtx50 else
                f"torch {version} is what sd-scripts' README installs.")
        if newer:
            note += f" lora-doctor does not know torch {newer}'s CUDA builds; to keep it, see {SELECTOR}."
    else:
        tag = choose_tag(version, capability, driver_cuda)
        tv = torchvision_for(version, torchvision_version)
        note = ""
    lines = []
    if torch_version:
        lines.append(f"{py} -m pip uninstall -y torch torchvision")
    lines.append(f"{py} -m pip install torch=={version} torchvision{tv} --index-url {INDEX}{tag}")
    return "\n".join(lines), note
