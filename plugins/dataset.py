"""Builtin plugin: the dataset doctor — reads the training folders the way sd-scripts will.

All checks share one scan per run (`lora_doctor.dataset.scan.scan`): folders, image headers,
captions. None of them waits for the target-interpreter probe, and none writes anything.
"""

from __future__ import annotations

from lora_doctor.hookspecs import hookimpl
from lora_doctor.model import Check

BUDGET = 120.0  # a large dataset on a slow disk; the scan itself targets < 5 s for 10,000 images


def check_structure(ctx):
    """Folders and TOML: repeats prefixes, missing folders, no images, reg folders, dataset TOML errors."""
    from lora_doctor.dataset.scan import scan
    from lora_doctor.dataset.findings import structure

    return structure(scan(ctx))


def check_images(ctx):
    """Unreadable/truncated files, huge images, EXIF rotation, transparency, exact duplicates."""
    from lora_doctor.dataset.scan import scan
    from lora_doctor.dataset.findings import images

    return images(ctx, scan(ctx))


def check_buckets(ctx):
    """Resolution and bucket options, image sizes without bucketing, the bucket table."""
    from lora_doctor.dataset.scan import scan
    from lora_doctor.dataset.findings import buckets

    return buckets(ctx, scan(ctx))


def check_captions(ctx):
    """Caption files: missing, wrong extension, empty, not UTF-8, BOM, length, tag table."""
    from lora_doctor.dataset.caption_findings import captions
    from lora_doctor.dataset.scan import scan

    return captions(ctx, scan(ctx))


def check_steps(ctx):
    """Images × repeats, batches, steps and epochs, saves vs free disk, output and cache folders."""
    from lora_doctor.dataset.scan import scan
    from lora_doctor.dataset.steps import steps

    return steps(ctx, scan(ctx))


@hookimpl
def lora_doctor_register_checks(register):
    """The dataset checks (id family `dataset`), applying when the command names a dataset."""
    for check_id, title, run in (
        ("dataset.structure", "Dataset folders", check_structure),
        ("dataset.images", "Dataset images", check_images),
        ("dataset.buckets", "Resolution and buckets", check_buckets),
        ("dataset.captions", "Captions", check_captions),
        ("dataset.steps", "Steps, saves and disk", check_steps),
    ):
        register(Check(id=check_id, title=title, run=run, applies="dataset", timeout=BUDGET))
