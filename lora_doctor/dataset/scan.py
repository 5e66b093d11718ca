"""One scan of a training dataset per Context, shared by the `dataset.*` checks.

`scan(ctx)` lists the folders sd-scripts would read, reads every image header and caption
(thread pool), finds exact duplicates, and keeps the result for the other checks of the same
run. Nothing is written anywhere.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass, field

from lora_doctor.dataset.captions import OTHER_CAPTION_EXTENSIONS, Caption, read_caption
from lora_doctor.dataset.layout import (STANDALONE, Layout, Subset, caption_dot_rule, image_files, list_dir,
                                        near_miss_images, scan_layout)
from lora_doctor.dataset.images import ImageInfo
from lora_doctor.model import CheckSkipped, Finding, Severity

SHOW = 5  # files named in a finding before "… and N more"
MEMO_SIZE = 4


@dataclass
class SubsetScan:
    subset: Subset
    dataset: int
    images: list[ImageInfo] = field(default_factory=list)
    captions: list[Caption] = field(default_factory=list)
    alt_captions: dict[str, int] = field(default_factory=dict)  # other extension -> how many images have one
    skipped_files: list[str] = field(default_factory=list)  # image-looking files sd-scripts will not read
    problem: str = ""  # why the folder cannot be used


@dataclass
class Scan:
    layout: Layout
    subsets: list[SubsetScan] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)
    seconds: float = 0.0

    def of_dataset(self, index: int) -> list[SubsetScan]:
        return [s for s in self.subsets if s.dataset == index]


_memo: dict[int, tuple[object, threading.Event, list]] = {}
_memo_lock = threading.Lock()


def scan(ctx) -> Scan:
    """The dataset scan for this context, computed once however many checks ask."""
    key = id(ctx)
    with _memo_lock:
        entry = _memo.get(key)
        owner = entry is None or entry[0] is not ctx
        if owner:
            entry = (ctx, threading.Event(), [])
            _memo[key] = entry
            while len(_memo) > MEMO_SIZE:  # keep only the scans of the latest contexts
                _memo.pop(next(iter(_memo)))
    _, done, box = entry
    if owner:
        try:
            box.append(_scan(ctx))
        except BaseException as exc:  # let every waiting check see the same failure
            box.append(exc)
        finally:
            done.set()
    done.wait()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def _read_subset(sub: SubsetScan) -> list[str]:
    entries, why = list_dir(sub.subset.image_dir)
    if why:
        sub.problem = why
        return []
    names = image_files(entries)
    sub.skipped_files = near_miss_images(entries)
    files = set(e.name for e in entries)
    ext = sub.subset.caption_extension
    for name in names:
        stem = os.path.splitext(name)[0]
        if stem + ext in files:
            continue
        for other in OTHER_CAPTION_EXTENSIONS:
            if other != ext and stem + other in files:
                sub.alt_captions[other] = sub.alt_captions.get(other, 0) + 1
                break
    return [os.path.join(sub.subset.image_dir, n) for n in names]


def _layout(ctx) -> Layout:
    """The datasets sd-scripts would build: from --dataset_config, else from the folder options."""
    if ctx.options.get("dataset_config"):
        from lora_doctor.dataset.config import layout_from_config

        layout = layout_from_config(ctx)
        caption_dot_rule(ctx, layout)
        return layout
    return scan_layout(ctx)


def _scan(ctx) -> Scan:
    from lora_doctor.dataset.images import scan as scan_images

    started = time.monotonic()
    result = Scan(_layout(ctx))
    seen: set[str] = set()
    jobs: list[tuple[SubsetScan, list[str]]] = []
    for d, dataset in enumerate(result.layout.datasets):
        for subset in dataset.subsets:
            key = os.path.normcase(os.path.abspath(subset.image_dir))
            if key in seen:
                result.layout.findings.append(Finding(
                    Severity.WARN, f"{subset.where} is listed twice: sd-scripts uses the first and ignores this one",
                    fix="Remove the duplicated subset."))
                continue
            seen.add(key)
            sub = SubsetScan(subset, d)
            result.subsets.append(sub)
            jobs.append((sub, _read_subset(sub)))
    paths = [p for _, files in jobs for p in files]
    infos = iter(scan_images(paths))
    caps = iter(_read_captions(jobs))
    for sub, files in jobs:
        sub.images = [next(infos) for _ in files]
        sub.captions = [next(caps) for _ in files]
    result.duplicates = find_duplicates([i for s in result.subsets for i in s.images if i.ok])
    result.seconds = time.monotonic() - started
    return result


def _read_captions(jobs) -> list[Caption]:
    from concurrent.futures import ThreadPoolExecutor

    work = [(p, sub.subset.caption_extension, sub.subset.enable_wildcard) for sub, files in jobs for p in files]
    if len(work) < 32:
        return [read_caption(*w) for w in work]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(lambda w: read_caption(*w), work, chunksize=64))


def find_duplicates(images: list[ImageInfo]) -> list[list[str]]:
    """Groups of byte-identical files: only files sharing a size are hashed."""
    by_size: dict[int, list[str]] = {}
    for info in images:
        by_size.setdefault(info.bytes, []).append(info.path)
    groups: dict[str, list[str]] = {}
    for size, paths in by_size.items():
        if len(paths) < 2:
            continue
        for path in paths:
            digest = hashlib.blake2b(digest_size=16)
            try:
                with open(path, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(block)
            except OSError:
                continue
            groups.setdefault(f"{size}:{digest.hexdigest()}", []).append(path)
    return [sorted(g) for g in groups.values() if len(g) > 1]


# -- helpers for the findings ---------------------------------------------------------------

def plural(n: int, word: str) -> str:
    """'1 image', '3 images'."""
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def names(paths: list[str], show: int = SHOW) -> str:
    """'a.png, b.png … and 3 more' (file names only)."""
    shown = ", ".join(os.path.basename(p) for p in paths[:show])
    return shown + (f" … and {len(paths) - show} more" if len(paths) > show else "")


def listing(paths: list[str], show: int = 20) -> str:
    lines = [str(p) for p in paths[:show]]
    if len(paths) > show:
        lines.append(f"… and {len(paths) - show} more")
    return "\n".join(lines)


def corrected_command(ctx, add: tuple[str, ...] = (), set_: dict[str, str] | None = None) -> str:
    """The command with flags added and `--name=value` options set (launch.edit.corrected), or,
    without a command, the options to add."""
    from lora_doctor.launch.edit import corrected

    if ctx.launch is None:
        parts = [f"--{k}={v}" for k, v in (set_ or {}).items()] + [f"--{a}" for a in add]
        return "add to the training command: " + " ".join(parts)
    return corrected(ctx, [*(set_ or {}).items(), *((a, True) for a in add)], equals=True)


def require(scan: Scan, images: bool = True) -> None:
    """Raise CheckSkipped when the dataset could not be read (its error is reported by
    dataset.structure) or, with `images`, when no folder has an image to look at: the check then
    shows as skipped with the reason instead of an empty all-clear."""
    if scan.layout.fatal:
        first = next((f.summary for f in scan.layout.findings if f.severity == Severity.ERROR), "")
        short = first if len(first) <= 90 else first[:89] + "…"
        raise CheckSkipped(f"the dataset could not be read{': ' + short if short else ''}; see Dataset folders")
    if images and not any(s.images for s in scan.subsets):
        raise CheckSkipped("no image folder sd-scripts would read; see Dataset folders")


def standalone(ctx) -> bool:
    return ctx.launch is not None and ctx.launch.launcher == STANDALONE
