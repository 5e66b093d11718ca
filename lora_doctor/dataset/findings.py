"""Findings about the dataset's folders, images and buckets, from one `dataset_doctor.Scan`."""

from __future__ import annotations

import os
from dataclasses import replace

from lora_doctor.dataset.buckets import BucketPlan, BucketTable, adjust_min_max, tabulate
from lora_doctor.dataset.scan import SHOW, Scan, plural, SubsetScan, corrected_command, listing, names, require
from lora_doctor.dataset.layout import IMAGE_EXTENSIONS
from lora_doctor.dataset.images import PIL_MAX_PIXELS
from lora_doctor.model import Finding, Severity

# bucket_reso_steps must be divisible by this, per training script (sd-scripts train_network.py, train_db.py, sdxl_train_network.py: the bucket_reso_steps assert)
STEPS_DIVISOR = {"train_network": 64, "train_db": 64, "fine_tune": 64, "train_textual_inversion": 64,
                 "sdxl_train_network": 32, "sdxl_train": 32, "sdxl_train_textual_inversion": 32,
                 "flux_train_network": 32, "flux_train": 32, "hunyuan_image_train_network": 32,
                 "anima_train_network": 16}
IGNORED_FOLDER = ("dataset.folder_without_repeats_prefix", "dataset.folder_name_malformed")
CROP_WARN = 0.2  # warn when more than this share of an image is cropped away to fit its bucket


def structure(scan: Scan) -> list[Finding]:
    out = list(scan.layout.findings)
    if scan.layout.fatal:
        return out
    train = reg = 0
    for sub in scan.subsets:
        s = sub.subset
        if sub.problem:
            out.append(Finding(
                Severity.WARN if s.where else Severity.ERROR,
                f"{s.where or s.image_dir} {sub.problem}: sd-scripts warns `not directory` and skips this subset",
                fix="Fix image_dir (relative paths are taken from the folder training starts in).",
                cause="dataset.train_data_dir_not_found" if sub.problem == "does not exist" else None,
                facts={"image_dir": str(s.image_dir)}))
            continue
        if sub.skipped_files:
            lower = [f for f in sub.skipped_files if os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
            detail = ("sd-scripts matches extensions exactly (.png .jpg .jpeg .webp .bmp or all upper case) and "
                      "never reads .gif/.tif; on Linux and macOS `.Jpg` is not `.jpg`.")
            fix = ("Rename the mixed-case extensions to lower case" if lower else
                   "Convert them to PNG or JPEG") + " if they should be trained."
            out.append(Finding(Severity.WARN, f"{len(sub.skipped_files)} files in {s.image_dir.name} are not read "
                                              f"by sd-scripts: {names(sub.skipped_files)}",
                               detail=detail, fix=fix,
                               cause="dataset.no_images" if not sub.images else None,
                               facts={"folder": str(s.image_dir), "files": sub.skipped_files[:50]}))
        if not sub.images:
            deeper = _images_below(s.image_dir)
            out.append(Finding(
                Severity.WARN, f"{s.image_dir.name} has no images sd-scripts can read: it skips this "
                               "subset (`no images found`)"
                               + (f"; the images are one level deeper, in {deeper.name!r}" if deeper else ""),
                fix="Put .png/.jpg/.jpeg/.webp/.bmp files directly in this folder (subfolders are not searched).",
                cause="dataset.no_images", facts={"folder": str(s.image_dir)}))
            continue
        count = len(sub.images) * s.num_repeats
        if s.is_reg:
            reg += count
        else:
            train += count
        out.append(Finding(Severity.OK, f"{s.image_dir.name}: {len(sub.images)} images × {s.num_repeats} repeats"
                                        f"{' (regularization)' if s.is_reg else ''}",
                           facts={"folder": str(s.image_dir), "images": len(sub.images), "repeats": s.num_repeats,
                                  "class_tokens": s.class_tokens}))
    if reg > train > 0:
        out.append(Finding(Severity.INFO, f"{reg} regularization images (with repeats) but {train} training images: "
                                          "sd-scripts uses only as many reg images as training images per epoch "
                                          "(`some of reg images are not used`)",
                           fix="Fewer reg images or repeats give the same result faster to scan."))
    if train > 0:  # an ignored folder beside folders that train: the run works, without those images
        out = [replace(f, severity=Severity.WARN) if f.cause in IGNORED_FOLDER else f for f in out]
    already = any(f.severity == Severity.ERROR for f in out)
    if train == 0 and not already:
        out.append(Finding(
            Severity.ERROR, "no training images found: sd-scripts will log `No data found.` and exit 0 without training",
            fix="Put images in `<repeats>_<name>` subfolders of --train_data_dir (e.g. 10_mychar/001.png).",
            cause="dataset.no_images"))
    return out


def _images_below(folder):
    """The first subfolder that holds images sd-scripts would read, if any."""
    from pathlib import Path

    from lora_doctor.dataset.layout import image_files, is_dir, list_dir

    entries, _ = list_dir(folder)
    for entry in sorted((e for e in entries if is_dir(e)), key=lambda e: e.name):
        inner, _ = list_dir(Path(entry.path))
        if image_files(inner):
            return Path(entry.path)
    return None


def _no_bucket_sizes(ctx, sub: SubsetScan, reso, out: list[Finding]) -> None:
    w, h = reso
    usable = [i for i in sub.images if i.ok and i.width and i.height]
    if sub.subset.random_crop:
        large = []
        small = [i for i in usable if i.width < w or i.height < h]
    else:
        large = [i for i in usable if i.width > w or i.height > h]
        small = [i for i in usable if i not in large and (i.width < w or i.height < h)]
    res = f"{w},{h}" if w != h else str(w)
    fix_command = corrected_command(ctx, add=("enable_bucket",), set_=_bounds_for(ctx, reso))
    for found, worst, relation, message, fix, cause in (
            (large, max(large, key=lambda i: i.pixels, default=None), "larger than", "image too large, but cropping "
             "and bucketing are disabled", "Add --enable_bucket (images are resized into aspect-ratio buckets), or "
             "--random_crop, or resize the images to the resolution.", "dataset.image_too_large_no_bucket"),
            (small, min(small, key=lambda i: i.pixels, default=None), "smaller than", "image size is small",
             "Add --enable_bucket (small images are upscaled into a bucket), or use larger images.",
             "dataset.image_too_small_no_bucket")):
        if not found:
            continue
        off = "bucketing and cropping are off" if relation == "larger than" else "bucketing is off"
        out.append(Finding(
            Severity.ERROR,
            f"{plural(len(found), 'image')} in {sub.subset.image_dir.name} {'is' if len(found) == 1 else 'are'} "
            f"{relation} --resolution={res} while {off}: {names([i.path for i in found])}",
            detail=f"e.g. {worst.path} is {worst.width}×{worst.height}. Training stops when it loads them: "
                   f"`AssertionError: {message}`.",
            fix=fix, fix_command=fix_command, cause=cause,
            facts={"resolution": [w, h], "images": [i.path for i in found[:50]]}))


def _bounds_for(ctx, reso) -> dict[str, str]:
    """min/max_bucket_reso values to add with --enable_bucket so its own asserts pass."""
    from lora_doctor.dataset.layout import opt_int

    steps = opt_int(ctx.options, "bucket_reso_steps", 64) or 64
    lo = opt_int(ctx.options, "min_bucket_reso", 256)
    hi = opt_int(ctx.options, "max_bucket_reso", 1024)
    out = {}
    if lo > min(reso):
        out["min_bucket_reso"] = str(max(steps, min(reso) - min(reso) % steps))
    if hi < max(reso):
        out["max_bucket_reso"] = str(max(reso) + (-max(reso)) % steps)
    return out


def bucket_settings(ctx, settings, out: list[Finding]) -> tuple[int, int] | None:
    """Check resolution and bucket options like sd-scripts' asserts; (min, max) after adjusting."""
    reso = settings.resolution
    if reso is None:
        out.append(Finding(Severity.ERROR, "--resolution is not set: sd-scripts stops with `resolution is required`",
                           fix="Add the training resolution (512 for SD1.x, 1024 for SDXL).",
                           fix_command=corrected_command(ctx, set_={"resolution": "512"})))
        return None
    if not settings.enable_bucket:
        return None  # sd-scripts sets bucket_reso_steps to None then: no divisibility assert
    steps = settings.bucket_reso_steps
    divisor = STEPS_DIVISOR.get(ctx.script_name)
    if steps <= 0 or (divisor and steps % divisor):
        good = divisor or 64
        out.append(Finding(Severity.ERROR, f"--bucket_reso_steps={steps} must be divisible by {good} for "
                                           f"{ctx.script_name or 'this script'}",
                           detail=f"sd-scripts stops with `bucket_reso_steps is {steps}. it must be divisible by {good}.`",
                           fix=f"Use --bucket_reso_steps={good}.",
                           fix_command=corrected_command(ctx, set_={"bucket_reso_steps": str(good)}),
                           cause="config.bucket_reso_steps_invalid"))
        return None
    lo, hi = adjust_min_max(settings.min_bucket_reso, settings.max_bucket_reso, steps)
    for name, old, new in (("min_bucket_reso", settings.min_bucket_reso, lo),
                           ("max_bucket_reso", settings.max_bucket_reso, hi)):
        if old != new:
            out.append(Finding(Severity.INFO, f"--{name}={old} is not a multiple of --bucket_reso_steps={steps}: "
                                              f"sd-scripts uses {new}"))
    ok = True
    if lo > min(reso):
        good = min(reso) - min(reso) % steps or steps
        out.append(Finding(Severity.ERROR, f"--min_bucket_reso={settings.min_bucket_reso} is above the resolution "
                                           f"{min(reso)}: sd-scripts stops (`min_bucket_reso must be equal or less "
                                           "than resolution`)",
                           fix=f"Set --min_bucket_reso={good} (at most the smaller side of --resolution).",
                           fix_command=corrected_command(ctx, set_={"min_bucket_reso": str(good)}),
                           cause="config.min_bucket_reso_above_resolution"))
        ok = False
    if hi < max(reso):
        good = max(reso) + (-max(reso)) % steps
        out.append(Finding(Severity.ERROR, f"--max_bucket_reso={settings.max_bucket_reso} is below the resolution "
                                           f"{max(reso)}: sd-scripts stops (`max_bucket_reso must be equal or "
                                           "greater than resolution`)",
                           fix=f"Set --max_bucket_reso={good} (at least the larger side of --resolution).",
                           fix_command=corrected_command(ctx, set_={"max_bucket_reso": str(good)}),
                           cause="config.max_bucket_reso_below_resolution"))
        ok = False
    return (lo, hi) if ok else None


def plan_for(settings, bounds) -> BucketPlan:
    lo, hi = bounds if bounds else (settings.min_bucket_reso, settings.max_bucket_reso)
    return BucketPlan(tuple(settings.resolution), settings.enable_bucket, lo, hi,
                      settings.bucket_reso_steps, settings.bucket_no_upscale)


def balanced_repeats(subs: list[SubsetScan]) -> dict[int, list[int]]:
    """Per reg subset index, the repeats of each image after sd-scripts balances reg to train count."""
    train = sum(len([i for i in s.images]) * s.subset.num_repeats for s in subs if not s.subset.is_reg)
    regs = [(k, s) for k, s in enumerate(subs) if s.subset.is_reg and s.images]
    out = {k: [0] * len(s.images) for k, s in regs}
    if not regs or train == 0:
        return out
    flat = [(k, j, s.subset.num_repeats) for k, s in regs for j in range(len(s.images))]
    n, first = 0, True
    while n < train:
        for k, j, repeats in flat:
            if first:
                out[k][j] = repeats
                n += repeats
            else:
                out[k][j] += 1
                n += 1
            if n >= train:
                break
        first = False
    return out


def dataset_table(scan: Scan, index: int, plan: BucketPlan) -> tuple[BucketTable, list]:
    """The bucket table (with repeats, reg balanced) and per-image (info, placement, subset) rows."""
    subs = scan.of_dataset(index)
    reg = balanced_repeats(subs)
    pairs, rows = [], []
    for k, sub in enumerate(subs):
        for j, info in enumerate(sub.images):
            if not (info.width and info.height):
                continue  # unreadable: reported by dataset.images
            placement = plan.select(info.width, info.height)
            repeats = reg[k][j] if sub.subset.is_reg else sub.subset.num_repeats
            if repeats:
                pairs.append((placement, repeats))
            rows.append((info, placement, sub))
    return tabulate(pairs), rows


def images(ctx, scan: Scan) -> list[Finding]:
    require(scan)
    out: list[Finding] = []
    all_images = [i for s in scan.subsets for i in s.images]
    bad = [i for i in all_images if not i.ok]
    for reason in sorted({i.error for i in bad}):
        group = [i.path for i in bad if i.error == reason]
        out.append(Finding(Severity.ERROR, f"{len(group)} image{'s' * (len(group) != 1)} {reason}: {names(group)}",
                           detail=listing(group) + "\nsd-scripts crashes when it reaches such a file "
                                                   "(`Error loading file`, or a ZeroDivisionError while making buckets).",
                           fix="Delete these files or replace them with a good copy (re-export or re-download).",
                           cause="dataset.image_corrupt", facts={"files": group[:50]}))
    ok = [i for i in all_images if i.ok]
    refused = [i for i in ok if i.pixels > 2 * PIL_MAX_PIXELS]
    huge = [i for i in ok if PIL_MAX_PIXELS < i.pixels <= 2 * PIL_MAX_PIXELS]
    if refused:
        out.append(Finding(Severity.ERROR, f"{plural(len(refused), 'image')} are too large for Pillow to open in training "
                                           f"(over {2 * PIL_MAX_PIXELS:,} pixels): {names([i.path for i in refused])}",
                           detail="Pillow raises DecompressionBombError when sd-scripts opens them.",
                           fix="Downscale them (e.g. to 2048 px on the long side) before training.",
                           facts={"files": [i.path for i in refused[:50]]}))
    if huge:
        out.append(Finding(Severity.WARN, f"{plural(len(huge), 'image')} are over {PIL_MAX_PIXELS:,} pixels: Pillow warns "
                                          f"(DecompressionBombWarning) and each takes a lot of RAM to load: "
                                          f"{names([i.path for i in huge])}",
                           fix="Downscale them to a few times the training resolution.",
                           facts={"files": [i.path for i in huge[:50]]}))
    rotated = [i for i in ok if i.orientation not in (0, 1)]
    if rotated:
        out.append(Finding(Severity.WARN, f"{plural(len(rotated), 'image')} have an EXIF rotation that sd-scripts ignores: "
                                          f"they train sideways or mirrored: {names([i.path for i in rotated])}",
                           detail="Photo viewers apply the EXIF orientation tag; sd-scripts (Pillow without "
                                  "exif_transpose) uses the stored pixels as they are.",
                           fix="Rotate the pixels and drop the tag (this rewrites the files listed):",
                           fix_command=f"{_q(ctx.python)} -c \"import sys; from PIL import Image, ImageOps; "
                                       "[ImageOps.exif_transpose(Image.open(p)).save(p) for p in sys.argv[1:]]\" "
                                       + " ".join(_q(i.path) for i in rotated[:SHOW * 4]),
                           facts={"files": [i.path for i in rotated[:50]]}))
    out += _transparency(scan, _q(ctx.python))
    if scan.duplicates:
        extra = sum(len(g) - 1 for g in scan.duplicates)
        out.append(Finding(Severity.WARN, f"{extra} images are exact duplicates of others "
                                          f"(e.g. {names(scan.duplicates[0], 3)}): they count double in training",
                           detail="\n".join(" = ".join(g) for g in scan.duplicates[:10]),
                           fix="Delete the copies, or raise repeats on purpose instead.",
                           facts={"groups": scan.duplicates[:50]}))
    if ok:
        out.append(Finding(Severity.OK, f"{plural(len(ok), 'image')} readable ({_sizes(ok)})"))
    return out


def _sizes(images) -> str:
    def span(values):
        return f"{min(values)}" if min(values) == max(values) else f"{min(values)}–{max(values)}"

    return f"{span([i.width for i in images])} × {span([i.height for i in images])} px"


def _q(path: str) -> str:
    from lora_doctor.launch.edit import quote

    return quote(path)


def _transparency(scan: Scan, python: str) -> list[Finding]:
    """Alpha that sd-scripts' RGB conversion drops; the fix runs Pillow in the training Python."""
    out = []
    rows = [(i, s) for s in scan.subsets for i in s.images if i.ok and i.has_alpha and not s.subset.alpha_mask]
    transparent = [i for i, _ in rows if (i.transparent_share or 0) >= 0.01]
    unsampled = [i for i, _ in rows if i.transparent_share is None]
    dark = [i for i in transparent if i.background_luma is not None and i.background_luma < 64
            and i.foreground_luma is not None and i.foreground_luma < 96]
    fix_cmd = (python + " -c \"import sys; from PIL import Image; [Image.alpha_composite(Image.new('RGBA', "
               "im.size, 'white'), im).convert('RGB').save(p) for p in sys.argv[1:] for im in "
               "[Image.open(p).convert('RGBA')]]\" ")
    how = ("Sampled: the alpha channel of each RGBA/LA/P image up to 2048×2048, reduced to ≤128 px; "
           "transparent = alpha < 128.")
    if dark:
        out.append(Finding(
            Severity.ERROR, f"{plural(len(dark), 'image')} {'is' if len(dark) == 1 else 'are'} dark line art on a transparent background: converted to RGB "
                            f"by sd-scripts they become black lines on black: {names([i.path for i in dark])}",
            detail=f"e.g. {dark[0].path}: {dark[0].transparent_share:.0%} transparent, the background turns "
                   f"brightness {dark[0].background_luma:.0f}/255 and the lines are {dark[0].foreground_luma:.0f}/255.\n"
                   + how,
            fix="Flatten them onto a white background (this rewrites the files listed):",
            fix_command=fix_cmd + " ".join(_q(i.path) for i in dark[:SHOW * 4]),
            cause="dataset.image_transparent_background", facts={"files": [i.path for i in dark[:50]]}))
    black = [i for i in transparent if i not in dark and i.background_luma is not None and i.background_luma < 64]
    if black:
        out.append(Finding(
            Severity.WARN, f"{plural(len(black), 'image')} {'has' if len(black) == 1 else 'have'} a transparent "
                           f"background that turns black when sd-scripts converts to RGB: {names([i.path for i in black])}",
            detail="The transparent pixels keep their hidden colour, which here is black.\n" + how,
            fix="Flatten them onto the background you want (white below), or train with alpha_mask = true:",
            fix_command=fix_cmd + " ".join(_q(i.path) for i in black[:SHOW * 4]),
            cause="dataset.image_transparent_background", facts={"files": [i.path for i in black[:50]]}))
    light = [i for i in transparent if i not in dark and i not in black]
    if light:
        out.append(Finding(
            Severity.INFO, f"{plural(len(light), 'image')} with transparency: the hidden colour is light, so they "
                           f"train as if on a light background: {names([i.path for i in light])}", detail=how))
    if unsampled:
        out.append(Finding(
            Severity.INFO, f"{len(unsampled)} large images have an alpha channel (not sampled): transparent areas "
                           f"would turn black in training: {names([i.path for i in unsampled])}",
            cause="dataset.image_transparent_background"))
    return out


def buckets(ctx, scan: Scan) -> list[Finding]:
    require(scan, images=False)
    out: list[Finding] = []
    for index, dataset in enumerate(scan.layout.datasets):
        settings = dataset.settings
        bounds = bucket_settings(ctx, settings, out)
        subs = scan.of_dataset(index)
        if settings.resolution is None or not any(s.images for s in subs):
            continue
        if not settings.enable_bucket:
            for sub in subs:
                _no_bucket_sizes(ctx, sub, settings.resolution, out)
            continue
        if bounds is None:
            continue
        plan = plan_for(settings, bounds)
        if settings.bucket_no_upscale:
            tiny = [i for s in subs for i in s.images if i.ok and 0 < min(i.width, i.height) < settings.bucket_reso_steps]
            if tiny:
                out.append(Finding(Severity.ERROR, f"{plural(len(tiny), 'image')} are smaller than --bucket_reso_steps="
                                                   f"{settings.bucket_reso_steps} with --bucket_no_upscale: their "
                                                   f"bucket would be 0 px wide: {names([i.path for i in tiny])}",
                                   fix="Remove them, or drop --bucket_no_upscale so they are upscaled."))
                continue
        table, rows = dataset_table(scan, index, plan)
        label = f"dataset {index}: " if len(scan.layout.datasets) > 1 else ""
        out.append(Finding(Severity.INFO, f"{label}{len(table.counts)} bucket{'s' * (len(table.counts) != 1)} in use "
                                          f"(counts include repeats)",
                           detail="\n".join(table.lines() + [f"mean ar error (without repeats): {float(table.mean_ar_error)}"]),
                           facts={"buckets": [{"resolution": list(r), "count": n} for _, r, n in table.rows()],
                                  "mean_ar_error": table.mean_ar_error}))
        cropped = [(i, p) for i, p, _ in rows if p.crop_fraction() > CROP_WARN]
        if cropped:
            i, p = max(cropped, key=lambda r: r[1].crop_fraction())
            out.append(Finding(Severity.WARN, f"{plural(len(cropped), 'image')} fit no bucket well: more than "
                                              f"{CROP_WARN:.0%} of each is cropped away: {names([c[0].path for c in cropped])}",
                               detail=f"e.g. {i.path} ({i.width}×{i.height}) goes to bucket {p.bucket} and loses "
                                      f"{p.crop_fraction():.0%}.",
                               fix="Crop them to a less extreme aspect ratio, or widen --min_bucket_reso/--max_bucket_reso."))
        upscaled = [(i, p) for i, p, _ in rows if p.resized[0] > i.width * 1.05]
        if upscaled:
            factor = max(p.resized[0] / i.width for i, p in upscaled)
            out.append(Finding(Severity.INFO if factor < 2 else Severity.WARN,
                               f"{plural(len(upscaled), 'image')} are smaller than their bucket and get upscaled "
                               f"(up to {factor:.1f}×, blurrier): {names([u[0].path for u in upscaled])}",
                               fix="Use larger source images, or --bucket_no_upscale to train them at their own size."))
    if not out:
        if not any(s.images for s in scan.subsets):
            require(scan)  # nothing to size: skipped, with the reason
        fitting = sum(1 for s in scan.subsets for i in s.images if i.ok)
        out.append(Finding(Severity.OK, f"{plural(fitting, 'image')} fit the resolution"
                                        + ("" if any(d.settings.enable_bucket for d in scan.layout.datasets)
                                           else " (bucketing is off)")))
    return out
