"""The real CLI: `lora-doctor dataset DIR …` and `lora-doctor env --only dataset -- accelerate launch …`."""

from __future__ import annotations

import json

from support import run_cli
from support.dataset_builders import caption, image, lineart_folder


def oversize_dataset(tmp_path):
    folder = tmp_path / "train" / "1_lineart"
    lineart_folder(folder)
    caption(image(folder / "img08_big.png", (128, 128), seed=42), "lineart")
    return tmp_path / "train"


def test_dataset_command_reports_the_oversize_image_and_exits_1(tmp_path, isolated_env):
    train = oversize_dataset(tmp_path)
    proc = run_cli(["dataset", str(train), "--resolution", "64", "--caption_extension=.txt"], env=isolated_env)
    assert proc.returncode == 1, proc.stderr
    assert "[✗] Resolution and buckets: 1 image in 1_lineart is larger than --resolution=64" in proc.stdout
    assert "img08_big.png" in proc.stdout
    assert f"$ lora-doctor dataset {train} --resolution=64 --caption_extension=.txt --min_bucket_reso=64 " \
           "--enable_bucket" in proc.stdout
    fixed = run_cli(["dataset", str(train), "--resolution=64", "--caption_extension=.txt", "--enable_bucket",
                     "--min_bucket_reso=64"], env=isolated_env)
    assert fixed.returncode == 0, fixed.stdout
    assert "bucket 0: resolution (64, 64), count: 9" in fixed.stdout
    assert "too large" not in fixed.stdout


def test_env_only_dataset_reads_the_training_command(tmp_path, isolated_env):
    oversize_dataset(tmp_path)
    cmd = ["accelerate", "launch", "train_network.py", "--train_data_dir=train", "--resolution=64",
           "--caption_extension=.txt", "--output_dir=out"]
    proc = run_cli(["env", "--offline", "--only", "dataset", "--", *cmd], env=isolated_env, cwd=tmp_path)
    assert proc.returncode == 1
    assert "image too large, but cropping and bucketing are disabled" in " ".join(proc.stdout.split())
    assert "$ accelerate launch train_network.py --train_data_dir=train --resolution=64 --caption_extension=.txt " \
           "--output_dir=out --min_bucket_reso=64 --enable_bucket" in proc.stdout
    ok = run_cli(["env", "--offline", "--only", "dataset", "--", *cmd, "--enable_bucket", "--min_bucket_reso=64"],
                 env=isolated_env, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout
    assert "9 images with repeats, 9 batches per epoch" in ok.stdout


def test_dataset_json_carries_causes_and_the_bucket_table(tmp_path, isolated_env):
    train = oversize_dataset(tmp_path)
    proc = run_cli(["dataset", str(train), "--resolution=64", "--caption_extension=.txt", "--json"], env=isolated_env)
    data = json.loads(proc.stdout)
    causes = {f["cause"] for c in data["checks"] for f in c["findings"]}
    assert "dataset.image_too_large_no_bucket" in causes
    assert data["summary"]["errors"] >= 1 and proc.returncode == 1
    ok = json.loads(run_cli(["dataset", str(train), "--resolution=64", "--caption_extension=.txt", "--json",
                             "--enable_bucket", "--min_bucket_reso=64"], env=isolated_env).stdout)
    table = [f for c in ok["checks"] for f in c["findings"] if "buckets" in f["facts"]][0]
    assert table["facts"]["buckets"] == [{"resolution": [64, 64], "count": 9}]


def test_dataset_usage_errors_exit_2_with_one_line(isolated_env):
    proc = run_cli(["dataset"], env=isolated_env)
    assert proc.returncode == 2 and "give the dataset folder" in proc.stderr and "Traceback" not in proc.stderr
    bad = run_cli(["dataset", "x", "--train_batch_size=two"], env=isolated_env)
    assert bad.returncode == 2 and "--train_batch_size" in bad.stderr


def test_missing_folder_is_a_usage_error_in_one_line(tmp_path, isolated_env):
    proc = run_cli(["dataset", str(tmp_path / "nope"), "--resolution=512"], env=isolated_env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (f"lora-doctor dataset: error: {tmp_path / 'nope'}: no such folder (give the folder "
                           "that holds the <repeats>_<name> image folders)\n")


def test_bad_resolution_value_is_a_clear_finding(tmp_path, isolated_env):
    lineart_folder(tmp_path / "train" / "1_x", n=1)
    proc = run_cli(["dataset", str(tmp_path / "train"), "--resolution=512x512"], env=isolated_env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout
    assert "--resolution=512x512 must be 'size' or 'width,height'" in proc.stdout


def test_dataset_toml_through_the_cli(tmp_path, isolated_env):
    cfg = tmp_path / "d.toml"
    cfg.write_text("[[datasets]]\n[[datasets.subsets]]\nimage_dir = 'imgs'\nnum_repeat = 2\n")
    proc = run_cli(["dataset", "--dataset_config", str(cfg), "--resolution=512"], env=isolated_env, cwd=tmp_path)
    assert proc.returncode == 1
    assert "d.toml: extra keys not allowed @ data['datasets'][0]['subsets'][0]['num_repeat']" in proc.stdout
    assert "did you mean `num_repeats`?" in proc.stdout
