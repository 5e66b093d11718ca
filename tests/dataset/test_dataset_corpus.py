"""Cross-check against real sd-scripts runs (tests/data/corpus/sdscripts-runs.dev.jsonl).

Each run's dataset is rebuilt with the same folders, image counts and the one thing its
`what_changed` says was broken; its command (paths moved into tmp) is checked, and the doctor
must print the run's own numbers (images × repeats, batches, epochs, steps, buckets) and, for
runs that died of a dataset problem, predict that cause before launch.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from support import DATA
from support.dataset_builders import caption, image, lineart_folder, lineart_rgba
from lora_doctor.model import Severity
from lora_doctor.plugins import dataset as plugin
from lora_doctor.testing import make_context, run_check

RUNS = [json.loads(line) for line in (DATA / "corpus" / "sdscripts-runs.dev.jsonl").read_text("utf-8").splitlines()]
HOME = "/home/user/lora"


def log_number(log: str, label: str) -> int | None:
    m = re.search(re.escape(label) + r"[^:]*: (\d+)", log)
    return int(m.group(1)) if m else None


def build(run: dict, root: Path) -> list[str]:
    """Recreate the run's folders under root; return its command with paths moved there."""
    for folder, n in re.findall(r"found directory (\S+) contains (\d+) image", run["log"]):
        target = root / Path(folder).relative_to(HOME)
        lineart_folder(target, n=int(n) - (1 if run["id"] in ("a1_image_too_large_no_bucket",
                                                               "a3_image_too_small_no_bucket",
                                                               "i2_abbreviated_option_accepted") else 0))
    data = root / "data"
    rid = run["id"]
    if rid in ("a1_image_too_large_no_bucket", "i2_abbreviated_option_accepted"):
        caption(image(data / "ds_big" / "1_lineart" / "img08_big.png", (128, 128), seed=77), "lineart")
    if rid == "a3_image_too_small_no_bucket":
        caption(image(data / "ds_small" / "1_lineart" / "img09_small.png", (48, 48), seed=78), "lineart")
    if rid == "f1_caption_cp932":
        (data / "ds_sjis" / "1_lineart" / "img03.txt").write_bytes("線画、女の子".encode("cp932"))
    if rid == "g2_html_saved_as_png":
        (data / "ds_fakepng" / "1_lineart" / "img05.png").write_text("<!DOCTYPE html><html>Not Found</html>")
    if rid == "l1_rgba_transparent_png":
        for p in (data / "ds_rgba" / "1_lineart").glob("*.png"):
            lineart_rgba(p)
    if rid == "h4_train_data_dir_not_found":
        lineart_folder(data / "lineart" / "1_lineart")
    cfg = root / "cfg"
    cfg.mkdir(exist_ok=True)
    subset = f"[[datasets]]\n[[datasets.subsets]]\nimage_dir = '{data / 'lineart' / '1_lineart'}'\n" \
             "caption_extension = '.txt'\nclass_tokens = 'lineart'\n"
    if rid.startswith("r2"):
        lineart_folder(data / "lineart" / "1_lineart")
        (cfg / "dataset_ok.toml").write_text(subset + "num_repeats = 1\n")
    if rid.startswith("r1"):
        (cfg / "dataset_typo.toml").write_text(subset + "num_repeat = 1\n")
    return [tok.replace(HOME, str(root)) for tok in run["command"]]


def dataset_runs(pred):
    return [pytest.param(r, id=r["id"]) for r in RUNS if pred(r)]


@pytest.mark.parametrize("run", dataset_runs(lambda r: "学習画像の数" in r["log"]))
def test_counts_steps_and_epochs_match_the_real_run(tmp_path, run):
    ctx = make_context(build(run, tmp_path), cwd=tmp_path)
    steps = [f for f in run_check(plugin, "dataset.steps", ctx) if "batches per epoch" in f.summary][0]
    log = run["log"]
    assert steps.facts["train_images_with_repeats"] == log_number(log, "num train images * repeats")
    assert steps.facts["reg_images_with_repeats"] == log_number(log, "num reg images")
    assert steps.facts["batches_per_epoch"] == log_number(log, "num batches per epoch")
    assert steps.facts["epochs"] == log_number(log, "num epochs")
    assert steps.facts["max_train_steps"] == log_number(log, "total optimization steps")


@pytest.mark.parametrize("run", dataset_runs(lambda r: re.search(r"bucket \d+: resolution", r["log"])))
def test_bucket_table_matches_the_real_run(tmp_path, run):
    argv = build(run, tmp_path)
    # the run spelled --enable_bucke (argparse accepted the prefix); the doctor reads exact names
    argv = ["--enable_bucket" if a == "--enable_bucke" else a for a in argv]
    findings = run_check(plugin, "dataset.buckets", make_context(argv, cwd=tmp_path))
    table = [f for f in findings if "in use" in f.summary][0]
    expected = re.findall(r"bucket \d+: resolution \(\d+, \d+\), count: \d+", run["log"])
    assert re.findall(r"bucket \d+: resolution \(\d+, \d+\), count: \d+", table.detail) == expected
    ar = re.search(r"mean ar error \(without repeats\): (\S+)", run["log"]).group(1)
    assert f"mean ar error (without repeats): {ar}" in table.detail


PREDICTED = {
    "a1_image_too_large_no_bucket": ("buckets", "dataset.image_too_large_no_bucket", "img08_big.png"),
    "a3_image_too_small_no_bucket": ("buckets", "dataset.image_too_small_no_bucket", "img09_small.png"),
    "e2_wrong_caption_extension": ("captions", "dataset.caption_extension_mismatch", "--caption_extension=.txt"),
    "f1_caption_cp932": ("captions", "dataset.caption_not_utf8", "img03.txt"),
    "g2_html_saved_as_png": ("images", "dataset.image_corrupt", "img05.png"),
    "h4_train_data_dir_not_found": ("structure", "dataset.train_data_dir_not_found", "lineart"),
    "r1_dataset_config_typo_key": ("structure", "config.dataset_toml_unknown_key",
                                   "extra keys not allowed @ data['datasets'][0]['subsets'][0]['num_repeat']"),
    "r4_dataset_config_not_found": ("structure", "config.dataset_toml_not_found", "dataset.toml"),
    "l1_rgba_transparent_png": ("images", "dataset.image_transparent_background", "black lines on black"),
}


@pytest.mark.parametrize("run", dataset_runs(lambda r: r["id"] in PREDICTED))
def test_the_doctor_predicts_what_killed_the_run(tmp_path, run):
    check, cause, evidence = PREDICTED[run["id"]]
    assert run["cause"] in (cause, "none")
    findings = run_check(plugin, f"dataset.{check}", make_context(build(run, tmp_path), cwd=tmp_path))
    hit = [f for f in findings if f.cause == cause]
    assert hit and hit[0].severity == Severity.ERROR
    assert evidence in hit[0].summary + hit[0].fix_command + hit[0].fix
    if "voluptuous" in run["log"]:
        assert hit[0].summary.split(": ", 1)[1] in run["log"]


@pytest.mark.parametrize("run", dataset_runs(lambda r: r["cause"] == "none" and "found directory" in r["log"]
                                             and r["id"] != "l1_rgba_transparent_png"))
def test_healthy_runs_get_no_dataset_errors(tmp_path, run):
    argv = [("--enable_bucket" if a == "--enable_bucke" else a) for a in build(run, tmp_path)]
    ctx = make_context(argv, cwd=tmp_path)
    for check in ("structure", "images", "buckets", "captions", "steps"):
        errors = [f for f in run_check(plugin, f"dataset.{check}", ctx) if f.severity == Severity.ERROR]
        assert not errors, (check, errors)
