"""The dataset checks on real folders built with Pillow, through the real check runner."""

from __future__ import annotations

import os
import sys

import pytest

from support.dataset_builders import caption, image, lineart_folder, lineart_rgba, truncated
from lora_doctor.model import Severity
from lora_doctor.plugins import dataset as plugin
from lora_doctor.testing import make_context, run_check

CMD = ["accelerate", "launch", "train_network.py"]


def ctx_for(tmp_path, *options, cwd=None):
    return make_context(CMD + list(options), cwd=cwd or tmp_path)


def run(check, ctx):
    return run_check(plugin, f"dataset.{check}", ctx)


def by_cause(findings, cause):
    return [f for f in findings if f.cause == cause]


def test_folder_without_repeats_prefix_is_an_error_with_the_rename(tmp_path):
    lineart_folder(tmp_path / "train" / "sks")
    findings = run("structure", ctx_for(tmp_path, "--train_data_dir=train", "--resolution=64"))
    hit = by_cause(findings, "dataset.folder_without_repeats_prefix")
    assert hit and hit[0].severity == Severity.ERROR
    assert "'sks'" in hit[0].summary and "10_sks" in hit[0].fix_command


def test_space_instead_of_underscore_is_malformed_and_the_fix_renames_it(tmp_path):
    lineart_folder(tmp_path / "train" / "10 sks dog")
    lineart_folder(tmp_path / "train" / "1_ok")
    findings = run("structure", ctx_for(tmp_path, "--train_data_dir=train", "--resolution=64"))
    hit = by_cause(findings, "dataset.folder_name_malformed")
    assert hit and "10_sks dog" in hit[0].fix
    # 1_ok still trains, so the run works without these images: a warning, not a blocking error
    assert hit[0].severity == Severity.WARN
    assert any(f.severity == Severity.OK and "1_ok: 8 images × 1 repeats" in f.summary for f in findings)


def test_zero_repeats_is_reported_because_sd_scripts_skips_it_silently(tmp_path):
    lineart_folder(tmp_path / "train" / "0_x", n=2)
    lineart_folder(tmp_path / "train" / "2_y", n=2)
    findings = run("structure", ctx_for(tmp_path, "--train_data_dir=train", "--resolution=64"))
    assert any("'0_x' has 0 repeats" in f.summary and f.severity == Severity.WARN for f in findings)


def test_missing_train_dir_names_the_sibling_it_probably_meant(tmp_path):
    lineart_folder(tmp_path / "data" / "lineart" / "1_lineart")
    findings = run("structure", ctx_for(tmp_path, f"--train_data_dir={tmp_path / 'data' / 'linart'}",
                                        "--resolution=64"))
    hit = by_cause(findings, "dataset.train_data_dir_not_found")
    assert hit[0].severity == Severity.ERROR
    assert "did you mean" in hit[0].summary and str(tmp_path / "data" / "lineart") in hit[0].summary


def test_images_directly_in_train_dir_is_not_parent_with_the_parent_as_fix(tmp_path):
    lineart_folder(tmp_path / "10_mychar")
    findings = run("structure", ctx_for(tmp_path, f"--train_data_dir={tmp_path / '10_mychar'}", "--resolution=64"))
    hit = by_cause(findings, "dataset.train_data_dir_not_parent")
    assert hit[0].severity == Severity.ERROR and f"--train_data_dir={tmp_path}" in hit[0].fix


def test_unsupported_and_mixed_case_extensions_mean_no_images(tmp_path):
    folder = tmp_path / "train" / "1_x"
    image(folder / "a.Jpg", fmt="JPEG")
    image(folder / "b.gif", fmt="GIF")
    image(folder / "c.tiff", fmt="TIFF")
    findings = run("structure", ctx_for(tmp_path, "--train_data_dir=train", "--resolution=64"))
    skipped = [f for f in findings if "not read by sd-scripts" in f.summary][0]
    assert "a.Jpg" in skipped.summary and "b.gif" in skipped.summary
    assert any(f.cause == "dataset.no_images" and f.severity == Severity.ERROR for f in findings)


def test_images_one_level_too_deep_are_pointed_at(tmp_path):
    lineart_folder(tmp_path / "train" / "10_char" / "images", n=2)
    findings = run("structure", ctx_for(tmp_path, "--train_data_dir=train", "--resolution=64"))
    hit = [f for f in findings if "no images sd-scripts can read" in f.summary][0]
    assert "one level deeper, in 'images'" in hit.summary and hit.cause == "dataset.no_images"
    assert any(f.severity == Severity.ERROR and f.cause == "dataset.no_images" for f in findings)


def test_stray_output_folder_and_reg_dir_missing(tmp_path):
    lineart_folder(tmp_path / "train" / "1_x", n=2)
    (tmp_path / "train" / "output").mkdir()
    findings = run("structure", ctx_for(tmp_path, "--train_data_dir=train", "--reg_data_dir=reg", "--resolution=64"))
    assert by_cause(findings, "dataset.stray_folder_in_image_dir")
    reg = by_cause(findings, "dataset.reg_data_dir_not_found")
    assert reg and reg[0].severity == Severity.WARN
    lineart_folder(tmp_path / "reg" / "3_person", n=2)
    findings = run("structure", ctx_for(tmp_path, "--train_data_dir=train", "--reg_data_dir=reg", "--resolution=64"))
    assert any("6 regularization images (with repeats) but 2 training images" in f.summary for f in findings)
    assert any(f.summary == "3_person: 2 images × 3 repeats (regularization)" for f in findings)


def test_oversize_without_buckets_is_an_error_naming_the_image_and_enable_bucket_fixes_it(tmp_path):
    lineart_folder(tmp_path / "train" / "1_lineart")
    image(tmp_path / "train" / "1_lineart" / "img08_big.png", (128, 128), seed=99)
    caption(tmp_path / "train" / "1_lineart" / "img08_big.png", "lineart")
    base = ["--train_data_dir=train", "--resolution=64,64", "--caption_extension=.txt"]
    findings = run("buckets", ctx_for(tmp_path, *base))
    hit = by_cause(findings, "dataset.image_too_large_no_bucket")
    assert hit[0].severity == Severity.ERROR and "img08_big.png" in hit[0].summary
    # the corrected command adds --enable_bucket and a min_bucket_reso the 64 px resolution allows
    assert hit[0].fix_command.startswith("accelerate launch train_network.py --train_data_dir=train")
    assert "--enable_bucket" in hit[0].fix_command and "--min_bucket_reso=64" in hit[0].fix_command
    fixed = run("buckets", ctx_for(tmp_path, *base, "--enable_bucket", "--min_bucket_reso=64"))
    assert not [f for f in fixed if f.severity >= Severity.WARN]
    assert "bucket 0: resolution (64, 64), count: 9" in fixed[0].detail


def test_random_crop_allows_large_but_not_small_images(tmp_path):
    lineart_folder(tmp_path / "train" / "1_x", n=1)
    image(tmp_path / "train" / "1_x" / "big.png", (128, 96), seed=3)
    image(tmp_path / "train" / "1_x" / "small.png", (48, 48), seed=4)
    findings = run("buckets", ctx_for(tmp_path, "--train_data_dir=train", "--resolution=64", "--random_crop"))
    assert not by_cause(findings, "dataset.image_too_large_no_bucket")
    small = by_cause(findings, "dataset.image_too_small_no_bucket")
    assert small and "small.png" in small[0].summary and "big.png" not in small[0].summary


@pytest.mark.parametrize("options, cause, fixed", [
    (["--resolution=64", "--enable_bucket"], "config.min_bucket_reso_above_resolution", "--min_bucket_reso=64"),
    (["--resolution=1536", "--enable_bucket"], "config.max_bucket_reso_below_resolution", "--max_bucket_reso=1536"),
    (["--resolution=512", "--enable_bucket", "--bucket_reso_steps=48"], "config.bucket_reso_steps_invalid",
     "--bucket_reso_steps=64"),
])
def test_bucket_option_asserts_are_predicted_with_the_corrected_option(tmp_path, options, cause, fixed):
    lineart_folder(tmp_path / "train" / "1_x", n=2)
    findings = run("buckets", ctx_for(tmp_path, "--train_data_dir=train", *options))
    hit = by_cause(findings, cause)
    assert hit and hit[0].severity == Severity.ERROR and fixed in hit[0].fix_command


def test_bucket_reso_steps_is_not_checked_with_bucketing_off(tmp_path):
    """sd-scripts sets bucket_reso_steps to None without --enable_bucket, so nothing asserts."""
    lineart_folder(tmp_path / "train" / "1_x", n=2)
    findings = run("buckets", ctx_for(tmp_path, "--train_data_dir=train", "--resolution=64", "--bucket_reso_steps=48"))
    assert not by_cause(findings, "config.bucket_reso_steps_invalid")


def test_sdxl_allows_bucket_steps_of_32(tmp_path):
    lineart_folder(tmp_path / "train" / "1_x", n=2, size=(1024, 1024))
    ctx = make_context(["accelerate", "launch", "sdxl_train_network.py", "--train_data_dir=train",
                        "--resolution=1024", "--enable_bucket", "--bucket_reso_steps=32"], cwd=tmp_path)
    assert not by_cause(run("buckets", ctx), "config.bucket_reso_steps_invalid")


def test_corrupt_truncated_empty_and_html_images_are_named(tmp_path):
    folder = tmp_path / "train" / "1_x"
    lineart_folder(folder, n=2)
    truncated(folder / "cut.png")
    truncated(folder / "cut.jpg", fmt="JPEG")
    (folder / "zero.png").write_bytes(b"")
    (folder / "page.png").write_text("<!DOCTYPE html><html><body>404</body></html>")
    findings = run("images", ctx_for(tmp_path, "--train_data_dir=train", "--resolution=64"))
    corrupt = by_cause(findings, "dataset.image_corrupt")
    text = " ".join(f.summary for f in corrupt)
    for name in ("cut.png", "cut.jpg", "zero.png", "page.png"):
        assert name in text
    assert all(f.severity == Severity.ERROR for f in corrupt)
    assert any("web page" in f.summary for f in corrupt)


def test_line_art_on_transparent_background_turns_black_on_black(tmp_path):
    folder = tmp_path / "train" / "1_lineart"
    for i in range(3):
        lineart_rgba(folder / f"l{i}.png", (64 + i, 64))
    image(folder / "opaque.png", mode="RGBA", color=(255, 255, 255, 255))
    findings = run("images", ctx_for(tmp_path, "--train_data_dir=train", "--resolution=64"))
    hit = by_cause(findings, "dataset.image_transparent_background")
    assert hit[0].severity == Severity.ERROR and "black lines on black" in hit[0].summary
    assert "3 images" in hit[0].summary and "opaque.png" not in hit[0].summary
    assert "alpha_composite" in hit[0].fix_command


def test_a_full_size_line_art_page_with_thin_lines_is_caught_and_the_printed_fix_flattens_it(tmp_path):
    import subprocess

    page = lineart_rgba(tmp_path / "train" / "10_lineart" / "page01.png", (1536, 1024))  # 2 px lines
    ctx = ctx_for(tmp_path, "--train_data_dir=train", "--resolution=512", "--enable_bucket")
    (hit,) = by_cause(run("images", ctx), "dataset.image_transparent_background")
    assert hit.severity == Severity.ERROR and "black lines on black" in hit.summary
    assert hit.fix_command.startswith(ctx.python) or hit.fix_command.startswith("'" + ctx.python)
    if sys.platform != "win32":
        subprocess.run(hit.fix_command.replace(ctx.python, sys.executable, 1), shell=True, check=True, timeout=60)
        assert not by_cause(run("images", ctx_for(tmp_path, "--train_data_dir=train", "--resolution=512",
                                                  "--enable_bucket")), "dataset.image_transparent_background")
        from PIL import Image
        with Image.open(page) as im:
            assert im.mode == "RGB" and im.getpixel((0, 500)) == (255, 255, 255)


def test_exif_rotation_and_exact_duplicates(tmp_path):
    folder = tmp_path / "train" / "1_x"
    image(folder / "phone.jpg", (80, 60), fmt="JPEG", exif_orientation=6)
    image(folder / "a.webp", fmt="WEBP", seed=5)
    (folder / "a copy.webp").write_bytes((folder / "a.webp").read_bytes())
    findings = run("images", ctx_for(tmp_path, "--train_data_dir=train", "--resolution=64"))
    rotated = [f for f in findings if "EXIF rotation" in f.summary]
    assert rotated and "phone.jpg" in rotated[0].summary and "exif_transpose" in rotated[0].fix_command
    dup = [f for f in findings if "exact duplicates" in f.summary]
    assert dup and "a copy.webp" in dup[0].detail and "a.webp" in dup[0].detail


def test_decompression_bomb_sizes_are_read_from_the_header_only(tmp_path):
    folder = tmp_path / "train" / "1_x"
    # a 10000×9000 JPEG (90 M pixels, above Pillow's 89.5 M warning limit): tiny on disk, never decoded
    image(folder / "huge.jpg", (10000, 9000), fmt="JPEG")
    findings = run("images", ctx_for(tmp_path, "--train_data_dir=train", "--resolution=64"))
    assert any("DecompressionBombWarning" in f.summary and "huge.jpg" in f.summary for f in findings)


def test_japanese_names_spaces_symlink_loop_and_dangling_link_do_not_crash(tmp_path):
    folder = tmp_path / "train" / "3_猫 ねこ"
    lineart_folder(folder, n=2)
    image(folder / "写真 1.png", seed=7)
    os.symlink(folder / "loop_a.png", folder / "loop_b.png")
    os.symlink(folder / "loop_b.png", folder / "loop_a.png")
    os.symlink(folder, folder / "self")  # a folder linking to itself (not recursed into)
    os.symlink(tmp_path / "gone.png", folder / "dangling.png")
    findings = run("images", ctx_for(tmp_path, "--train_data_dir=train", "--resolution=64"))
    corrupt = " ".join(f.summary for f in by_cause(findings, "dataset.image_corrupt"))
    assert "loop_a.png" in corrupt and "dangling.png" in corrupt
    assert any("3 images readable" in f.summary for f in findings)
    structure = run("structure", ctx_for(tmp_path, "--train_data_dir=train", "--resolution=64"))
    assert any("3_猫 ねこ: 6 images × 3 repeats" in f.summary for f in structure)


def test_unreadable_folder_is_a_finding(unprivileged, isolated_env):
    """As an unprivileged user (chmod 000 does not stop root)."""
    import json

    folder = unprivileged.tmp / "train" / "1_x"
    lineart_folder(folder, n=1)
    folder.chmod(0)
    try:
        proc = unprivileged.run_cli(["dataset", "train", "--resolution=64", "--json"], isolated_env)
    finally:
        folder.chmod(0o755)
    structure = next(c for c in json.loads(proc.stdout)["checks"] if c["id"] == "dataset.structure")
    assert any("permission denied" in f["summary"] for f in structure["findings"]), structure


def test_nothing_is_written_to_the_dataset(tmp_path):
    lineart_folder(tmp_path / "train" / "1_x", n=3)
    before = sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    ctx = ctx_for(tmp_path, "--train_data_dir=train", "--resolution=64", "--cache_latents_to_disk",
                  "--output_dir=out", "--save_state")
    for check in ("structure", "images", "buckets", "captions", "steps"):
        run(check, ctx)
    assert sorted((p, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before


def test_transparency_is_judged_by_the_colour_the_background_really_gets(tmp_path):
    from PIL import Image, ImageDraw

    folder = tmp_path / "train" / "1_x"
    folder.mkdir(parents=True)
    white = Image.new("RGBA", (64, 64), (255, 255, 255, 0))  # hidden colour white: trains as white
    ImageDraw.Draw(white).line((0, 0, 63, 63), fill=(0, 0, 0, 255), width=2)
    white.save(folder / "white_hidden.png")
    light_lines = Image.new("RGBA", (64, 64), (0, 0, 0, 0))  # white lines on a background that turns black
    ImageDraw.Draw(light_lines).line((0, 0, 63, 63), fill=(255, 255, 255, 255), width=4)
    light_lines.save(folder / "light_lines.png")
    palette = Image.new("P", (64, 64), 0)  # palette image with a transparent index, black lines
    palette.putpalette([0, 0, 0] * 256)
    ImageDraw.Draw(palette).line((0, 0, 63, 63), fill=1, width=2)
    palette.save(folder / "palette.png", transparency=0)
    findings = run("images", ctx_for(tmp_path, "--train_data_dir=train", "--resolution=64"))
    by_name = {f.summary.rsplit(": ", 1)[-1]: f for f in findings if "transparen" in f.summary}
    assert by_name["palette.png"].severity == Severity.ERROR
    assert by_name["light_lines.png"].severity == Severity.WARN and "turns black" in by_name["light_lines.png"].summary
    assert by_name["white_hidden.png"].severity == Severity.INFO and by_name["white_hidden.png"].cause is None


@pytest.mark.parametrize("name, fixed", [("10 sks", "10_sks"), ("10-sks dog", "10_sks dog"), ("10sks", "10_sks"),
                                         ("sks_10", "10_sks"), ("photos 2023", ""), ("misc", "")])
def test_malformed_folder_names_get_a_repaired_name(name, fixed):
    from lora_doctor.dataset.layout import _repaired_name

    assert _repaired_name(name) == fixed
