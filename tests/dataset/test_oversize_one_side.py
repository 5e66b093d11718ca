"""An image over (or, with --random_crop, under) the resolution on ONE side only stops sd-scripts
just as one over on both sides does: train_util's `__getitem__` asserts `image too large` when
`im_h > height or im_w > width` without --random_crop, and `image size is small` when the (cropped)
image is not exactly the resolution. Real PNGs written by Pillow, through the real CLI."""

from __future__ import annotations

import json

import pytest

from support import run_cli
from support.dataset_builders import caption, image, lineart_folder


def dataset(tmp_path, name: str, size, good=(64, 64)) -> str:
    """The corpus' 8 images of the resolution (`good`) plus one of `size` (width, height), each captioned."""
    folder = tmp_path / "train" / "1_lineart"
    lineart_folder(folder, size=good)
    caption(image(folder / name, size, seed=77), "lineart")
    return str(tmp_path / "train")


def flat(text: str) -> str:
    return " ".join(text.split())  # prose is wrapped at 100 columns in a pipe


@pytest.mark.parametrize("resolution, size", [
    ("64", (128, 64)),    # wider only, height exactly the resolution
    ("64", (64, 96)),     # taller only
    ("64", (128, 48)),    # wider and shorter: sd-scripts asserts `too large` before it ever checks `small`
    ("64,96", (80, 80)),  # --resolution=W,H (the others 64×96): 80 > 64 wide, 80 < 96 high
])
def test_an_image_over_the_resolution_on_one_side_is_the_too_large_error(tmp_path, isolated_env, resolution, size):
    good = tuple(int(v) for v in (resolution + "," + resolution).split(",")[:2])
    train = dataset(tmp_path, "odd.png", size, good)
    proc = run_cli(["dataset", train, f"--resolution={resolution}", "--caption_extension=.txt"], env=isolated_env)
    out = flat(proc.stdout)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert (f"[✗] Resolution and buckets: 1 image in 1_lineart is larger than --resolution={resolution} while "
            "bucketing and cropping are off: odd.png") in out
    assert f"is {size[0]}×{size[1]}. Training stops when it loads them: `AssertionError: image too large, but " \
           "cropping and bucketing are disabled`" in out
    assert "smaller than" not in out  # not the other assertion, whose fix (bigger images) would not help
    assert f"$ lora-doctor dataset {train} --resolution={resolution} --caption_extension=.txt --min_bucket_reso=64 " \
           "--enable_bucket" in proc.stdout


def test_the_printed_fix_for_a_one_side_oversize_image_clears_it(tmp_path, isolated_env):
    train = dataset(tmp_path, "wide.png", (128, 64))
    broken = run_cli(["dataset", train, "--resolution=64", "--caption_extension=.txt", "--json"], env=isolated_env)
    causes = [f["cause"] for c in json.loads(broken.stdout)["checks"] for f in c["findings"] if f["severity"] == "error"]
    assert causes == ["dataset.image_too_large_no_bucket"] and broken.returncode == 1
    fixed = run_cli(["dataset", train, "--resolution=64", "--caption_extension=.txt", "--min_bucket_reso=64",
                     "--enable_bucket"], env=isolated_env)
    assert fixed.returncode == 0, fixed.stdout
    assert "too large" not in fixed.stdout


@pytest.mark.parametrize("size", [(64, 48), (48, 64), (128, 48)])
def test_random_crop_with_an_image_short_on_one_side_is_the_too_small_error(tmp_path, isolated_env, size):
    train = dataset(tmp_path, "short.png", size)
    proc = run_cli(["dataset", train, "--resolution=64", "--caption_extension=.txt", "--random_crop"],
                   env=isolated_env)
    out = flat(proc.stdout)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert ("[✗] Resolution and buckets: 1 image in 1_lineart is smaller than --resolution=64 while bucketing is "
            "off: short.png") in out
    assert f"is {size[0]}×{size[1]}. Training stops when it loads them: `AssertionError: image size is small`" in out
    assert "larger than" not in out  # --random_crop crops the long side: that one is fine
    assert f"$ lora-doctor dataset {train} --resolution=64 --caption_extension=.txt --random_crop " \
           "--min_bucket_reso=64 --enable_bucket" in proc.stdout


def test_random_crop_with_every_side_at_or_over_the_resolution_is_fine(tmp_path, isolated_env):
    train = dataset(tmp_path, "wide.png", (128, 64))
    proc = run_cli(["dataset", train, "--resolution=64", "--caption_extension=.txt", "--random_crop"],
                   env=isolated_env)
    assert proc.returncode == 0, proc.stdout
    assert "smaller than" not in proc.stdout and "larger than" not in proc.stdout
