"""Bucket math and step arithmetic: sd-scripts' algorithm, repeats, reg balancing, saves and disk."""

from __future__ import annotations

import math
import os
import sys

import pytest

from support.dataset_builders import image, lineart_folder
from lora_doctor.dataset.buckets import BucketPlan, adjust_min_max, make_bucket_resolutions, tabulate
from lora_doctor.model import Severity
from lora_doctor.plugins import dataset as plugin
from lora_doctor.testing import make_context, run_check


def test_bucket_resolutions_are_sd_scripts_own():
    resos = make_bucket_resolutions((512, 512), 256, 1024, 64)
    assert resos == [(256, 832), (256, 896), (256, 960), (256, 1024), (320, 704), (320, 768), (384, 640),
                     (448, 576), (512, 512), (576, 448), (640, 384), (704, 320), (768, 320), (832, 256),
                     (896, 256), (960, 256), (1024, 256)]
    assert len(make_bucket_resolutions((1024, 1024), 256, 2048, 64)) == 41
    assert adjust_min_max(300, 1000, 64) == (256, 1024)


def test_select_bucket_picks_closest_aspect_and_covers_it():
    plan = BucketPlan((512, 512), True, 256, 1024, 64)
    p = plan.select(1200, 800)  # aspect 1.5: the bucket with the nearest aspect wins
    ratios = {r: abs(r[0] / r[1] - 1.5) for r in plan.predefined}
    assert p.bucket == min(ratios, key=ratios.get)
    assert p.resized[0] >= p.bucket[0] and p.resized[1] >= p.bucket[1]
    assert plan.select(512, 512).bucket == (512, 512)


def test_no_upscale_keeps_small_images_at_their_size_rounded_down():
    plan = BucketPlan((512, 512), True, 256, 1024, 64, no_upscale=True)
    assert plan.select(300, 200).bucket == (256, 192)
    big = plan.select(2000, 1000)
    assert big.bucket[0] * big.bucket[1] <= 512 * 512 and big.bucket[0] % 64 == 0


def test_batches_round_up_per_bucket():
    plan = BucketPlan((512, 512), True, 256, 1024, 64)
    placements = [(plan.select(512, 512), 3), (plan.select(1024, 512), 3), (plan.select(512, 1024), 1)]
    table = tabulate(placements)
    # three buckets of 3, 3 and 1 images at batch size 2: 2 + 2 + 1 batches, not ceil(7 / 2) = 4
    assert table.batches(2) == 5 and math.ceil(7 / 2) == 4
    assert table.lines()[0].startswith("bucket 0: resolution (")


def steps_of(tmp_path, *options, script="train_network.py", launcher=("accelerate", "launch")):
    ctx = make_context([*launcher, script, "--train_data_dir=train", *options], cwd=tmp_path)
    return run_check(plugin, "dataset.steps", ctx)


def test_repeats_reg_balancing_and_epochs(tmp_path):
    lineart_folder(tmp_path / "train" / "10_sks", n=5)
    lineart_folder(tmp_path / "reg" / "1_person", n=20)
    findings = steps_of(tmp_path, "--reg_data_dir=reg", "--resolution=64", "--train_batch_size=4",
                        "--output_dir=out")
    s = findings[0]
    # 50 train + reg trimmed to 50 = 100 images in one bucket at batch 4 -> 25 batches; 1600 steps = 64 epochs
    assert (s.facts["train_images_with_repeats"], s.facts["reg_images_with_repeats"]) == (50, 20)
    assert s.facts["batches_per_epoch"] == 25 and s.facts["epochs"] == 64
    assert "the default --max_train_steps" in s.summary


def test_max_train_epochs_overrides_steps_per_process_and_accumulation(tmp_path):
    lineart_folder(tmp_path / "train" / "3_x", n=10)
    findings = steps_of(tmp_path, "--resolution=64", "--max_train_epochs=4", "--gradient_accumulation_steps=2",
                        "--output_dir=out", launcher=("accelerate", "launch", "--num_processes", "2"))
    s = findings[0]
    # 30 batches / 2 processes / 2 accumulation = 7.5 -> 8 per epoch; 4 epochs = 32 steps
    assert s.facts["max_train_steps"] == 32 and s.facts["epochs"] == 4
    assert "--max_train_epochs=4 → 32 steps" in s.summary


def test_save_every_n_steps_with_state_counts_files(tmp_path):
    lineart_folder(tmp_path / "train" / "1_x", n=4)
    findings = steps_of(tmp_path, "--resolution=64", "--max_train_steps=1000", "--save_every_n_steps=100",
                        "--save_state", "--output_dir=out")
    disk = [f for f in findings if "will save" in f.summary][0]
    # sd-scripts train_network.py, train: 1000 steps, every 100, --save_state -> 10 step saves (step 1000 too) + the final
    # LoRA, and 10 step states + last-state
    assert "will save 11 LoRA files" in disk.summary and "11 training states" in disk.summary
    # per epoch: the last epoch's save is the final one (epochs 2, 4, 6, 8 + final)
    findings = steps_of(tmp_path, "--resolution=64", "--max_train_epochs=10", "--save_every_n_epochs=2",
                        "--output_dir=out")
    assert "will save 5 LoRA files" in [f for f in findings if "will save" in f.summary][0].summary
    findings = steps_of(tmp_path, "--resolution=64", "--max_train_steps=1050", "--save_every_n_steps=100",
                        "--save_last_n_steps_state=200", "--save_state", "--output_dir=out")
    disk = [f for f in findings if "will save" in f.summary][0]
    assert "will save 11 LoRA files" in disk.summary and "11 training states" in disk.summary


def test_disk_too_small_for_the_saves_is_an_error(tmp_path):
    lineart_folder(tmp_path / "train" / "1_x", n=4)
    # an absurd network_dim makes the estimate exceed any real free space, measured with shutil.disk_usage
    findings = steps_of(tmp_path, "--resolution=64", "--network_dim=2000000", "--save_every_n_steps=10",
                        "--save_state", "--output_dir=out")
    hit = [f for f in findings if f.cause == "os.disk_full"]
    assert hit and hit[0].severity == Severity.ERROR and "MB free" in hit[0].summary


def test_output_dir_problems(tmp_path):
    lineart_folder(tmp_path / "train" / "1_x", n=2)
    (tmp_path / "afile").write_text("x")
    hit = [f for f in steps_of(tmp_path, "--resolution=64", "--output_dir=afile")
           if f.cause == "os.output_dir_not_writable"]
    assert hit and "is a file" in hit[0].summary
    missing = [f for f in steps_of(tmp_path, "--resolution=64") if f.cause == "config.output_dir_missing"]
    assert missing and missing[0].fix_command.endswith("--output_dir=./output")


def test_bucketed_steps_count_each_bucket(tmp_path):
    folder = tmp_path / "train" / "1_x"
    for i in range(3):
        image(folder / f"sq{i}.png", (512, 512), seed=i)
    for i in range(3):
        image(folder / f"wide{i}.png", (1024, 512), seed=10 + i)
    s = steps_of(tmp_path, "--resolution=512", "--enable_bucket", "--train_batch_size=2", "--output_dir=out")[0]
    assert s.facts["batches_per_epoch"] == 4  # 2 buckets × ceil(3 / 2)


def _dataset_findings(unprivileged, isolated_env, *options):
    """`lora-doctor dataset train … --json` as an unprivileged user (chmod does not stop root)."""
    import json

    proc = unprivileged.run_cli(["dataset", "train", "--json", *options], isolated_env)
    assert proc.returncode in (0, 1), proc.stderr
    return [f for c in json.loads(proc.stdout)["checks"] for f in c["findings"]]


def test_latent_cache_into_read_only_image_folder(unprivileged, isolated_env):
    folder = unprivileged.tmp / "train" / "1_x"
    lineart_folder(folder, n=2)
    folder.chmod(0o555)
    try:
        findings = _dataset_findings(unprivileged, isolated_env, "--resolution=64", "--cache_latents_to_disk",
                                     "--output_dir=out")
    finally:
        folder.chmod(0o755)
    assert [f for f in findings if f["cause"] == "os.dataset_dir_not_writable" and f["severity"] == "error"]


def test_output_dir_under_read_only_folder(unprivileged, isolated_env):
    lineart_folder(unprivileged.tmp / "train" / "1_x", n=2)
    locked = unprivileged.tmp / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        findings = _dataset_findings(unprivileged, isolated_env, "--resolution=64", "--output_dir=locked/out")
    finally:
        locked.chmod(0o755)
    hit = [f for f in findings if f["cause"] == "os.output_dir_not_writable"]
    assert hit and "cannot be created" in hit[0]["summary"]
