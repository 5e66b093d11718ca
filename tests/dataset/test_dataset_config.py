"""--dataset_config TOML: the same voluptuous messages sd-scripts prints, with file and key."""

from __future__ import annotations

import pytest

from support.dataset_builders import lineart_folder
from lora_doctor.dataset.config import error_finding, validate
from lora_doctor.model import Severity
from lora_doctor.plugins import dataset as plugin
from lora_doctor.testing import make_context, run_check


def structure(tmp_path, toml_text: str, name="dataset.toml", *options):
    cfg = tmp_path / name
    cfg.write_text(toml_text, encoding="utf-8")
    ctx = make_context(["accelerate", "launch", "train_network.py", f"--dataset_config={cfg}", "--resolution=64",
                        *options], cwd=tmp_path)
    return run_check(plugin, "dataset.structure", ctx)


def test_misspelled_key_gives_sd_scripts_message_and_suggests_the_key(tmp_path):
    lineart_folder(tmp_path / "data" / "1_lineart")
    findings = structure(tmp_path, "[[datasets]]\n[[datasets.subsets]]\nimage_dir = 'data/1_lineart'\nnum_repeat = 1\n")
    hit = [f for f in findings if f.cause == "config.dataset_toml_unknown_key"][0]
    # exactly the message of the real run r1_dataset_config_typo_key
    assert hit.summary == "dataset.toml: extra keys not allowed @ data['datasets'][0]['subsets'][0]['num_repeat']"
    assert "`num_repeats`" in hit.fix and hit.severity == Severity.ERROR


@pytest.mark.parametrize("toml_text, message", [
    ("image_dir = 'x'\n", "extra keys not allowed @ data['image_dir']"),
    ("[[datasets]]\n[[datasets.subsets]]\nnum_repeats = 2\n",
     "required key not provided @ data['datasets'][0]['subsets'][0]['image_dir']"),
    ("[general]\nbatch_size = '2'\n", "expected int for dictionary value @ data['general']['batch_size']"),
    ("[[datasets]]\nresolution = [512, 512, 512]\n", "expected int for dictionary value @ data['datasets'][0]['resolution']"),
    ("[general]\nvalidation_split = 0\n", "expected float for dictionary value @ data['general']['validation_split']"),
    ("[[datasets]]\n[[datasets.subsets]]\nimage_dir = 'x'\nresolution = 512\n",
     "extra keys not allowed @ data['datasets'][0]['subsets'][0]['resolution']"),
])
def test_schema_errors_match_voluptuous(tmp_path, toml_text, message):
    findings = structure(tmp_path, toml_text)
    assert any(f.summary == f"dataset.toml: {message}" and f.severity == Severity.ERROR for f in findings)


def test_dataset_level_key_in_subset_says_where_it_belongs(tmp_path):
    errors = validate({"datasets": [{"subsets": [{"image_dir": "x", "batch_size": 2}]}]})
    finding = error_finding(tmp_path / "d.toml", *errors[0])
    assert "[[datasets]] or [general]" in finding.fix


def test_windows_backslash_path_is_a_syntax_error_with_the_quoting_fix(tmp_path):
    findings = structure(tmp_path, '[[datasets]]\n[[datasets.subsets]]\nimage_dir = "C:\\Users\\me\\img"\n')
    hit = [f for f in findings if f.cause == "config.dataset_toml_syntax"][0]
    assert hit.severity == Severity.ERROR and "dataset.toml is not valid TOML" in hit.summary
    assert "single" in hit.fix and "forward slashes" in hit.fix


def test_missing_config_file(tmp_path):
    ctx = make_context(["accelerate", "launch", "train_network.py", "--dataset_config=cfg/dataset.toml"], cwd=tmp_path)
    hit = [f for f in run_check(plugin, "dataset.structure", ctx) if f.cause == "config.dataset_toml_not_found"]
    assert hit and "cfg/dataset.toml does not exist" in hit[0].summary


def test_valid_config_reads_subsets_with_inheritance_and_counts_steps(tmp_path):
    lineart_folder(tmp_path / "a", n=4)
    lineart_folder(tmp_path / "reg", n=2)
    toml_text = ("[general]\ncaption_extension = '.txt'\nenable_bucket = true\nmin_bucket_reso = 64\n"
                 "max_bucket_reso = 128\n[[datasets]]\nresolution = 64\nbatch_size = 2\n"
                 "[[datasets.subsets]]\nimage_dir = 'a'\nnum_repeats = 3\n"
                 "[[datasets.subsets]]\nimage_dir = 'reg'\nis_reg = true\n")
    cfg = tmp_path / "d.toml"
    cfg.write_text(toml_text)
    ctx = make_context(["accelerate", "launch", "train_network.py", f"--dataset_config={cfg}",
                        "--train_data_dir=ignored", "--max_train_steps=30"], cwd=tmp_path)
    structure = run_check(plugin, "dataset.structure", ctx)
    assert any("sd-scripts ignores --train_data_dir" in f.summary for f in structure)
    assert any(f.summary == "a: 4 images × 3 repeats" for f in structure)
    steps = run_check(plugin, "dataset.steps", ctx)[0]
    # 12 train + reg balanced up to 12 = 24 images in one 64×64 bucket, batch 2 -> 12 batches
    assert steps.facts["train_images_with_repeats"] == 12 and steps.facts["reg_images_with_repeats"] == 2
    assert steps.facts["batches_per_epoch"] == 12 and steps.facts["epochs"] == 3
    captions = run_check(plugin, "dataset.captions", ctx)
    assert not [f for f in captions if f.severity >= Severity.WARN]


def test_a_broken_dataset_toml_skips_the_checks_that_need_it_with_the_reason(tmp_path):
    """Issue 12 item 4: images/captions/steps used to show `[✓]` with nothing under them, hiding
    an empty and a Shift-JIS caption; now they are skipped (–) and say why."""
    import io

    from support.dataset_builders import caption, image
    from lora_doctor.host.doctor import run_checks, summary
    from lora_doctor.output.render import render_results
    from lora_doctor.testing import checks_of

    folder = tmp_path / "data" / "1_lineart"
    lineart_folder(folder, n=2)
    caption(image(folder / "empty.png", seed=20), b"")
    caption(image(folder / "jp.png", seed=21), "猫、かわいい".encode("cp932"))
    cfg = tmp_path / "dataset.toml"
    cfg.write_text("[general]\nshuffle_caption = true\ncaption_extension = '.txt'\n[[datasets]]\nresolution = 64\n"
                   "[[datasets.subsets]]\nimage_dir = 'data/1_lineart'\nnum_repeat = 1\n", encoding="utf-8")
    ctx = make_context(["accelerate", "launch", "train_network.py", f"--dataset_config={cfg}", "--output_dir=out"],
                       cwd=tmp_path)
    results = {r.check.id: r for r in run_checks(checks_of(plugin), ctx)}
    assert results["dataset.structure"].status == "error"
    for check_id in ("dataset.images", "dataset.buckets", "dataset.captions", "dataset.steps"):
        r = results[check_id]
        assert r.status == "skipped" and not r.findings, (check_id, r.status, r.findings)
        assert "dataset could not be read" in r.skipped_reason and "num_repeat" in r.skipped_reason
        assert r.to_json()["status"] == "skipped" and r.to_json()["summary"] == r.skipped_reason
    out = io.StringIO()
    render_results(list(results.values()), summary(list(results.values())), stream=out)
    text = " ".join(out.getvalue().split())  # however the renderer wraps
    assert "[✓] Captions" not in text and "[✓] Dataset images" not in text
    assert "[–] Dataset images; Resolution and buckets; Captions; Steps, saves and disk (skipped: the dataset " \
           "could not be read" in text
    # once the TOML is fixed, the hidden problems show
    cfg.write_text(cfg.read_text("utf-8").replace("num_repeat ", "num_repeats "), encoding="utf-8")
    ctx = make_context(["accelerate", "launch", "train_network.py", f"--dataset_config={cfg}", "--output_dir=out"],
                       cwd=tmp_path)
    causes = {f.cause for f in run_check(plugin, "dataset.captions", ctx)}
    assert {"dataset.caption_empty", "dataset.caption_not_utf8"} <= causes


def test_no_images_skips_the_image_checks_instead_of_an_empty_all_clear(tmp_path):
    (tmp_path / "train" / "1_x").mkdir(parents=True)
    ctx = make_context(["accelerate", "launch", "train_network.py", "--train_data_dir=train", "--resolution=64",
                        "--output_dir=out"], cwd=tmp_path)
    from lora_doctor.host.doctor import run_checks
    from lora_doctor.testing import checks_of

    results = {r.check.id: r for r in run_checks(checks_of(plugin), ctx)}
    assert results["dataset.structure"].status == "error"
    for check_id in ("dataset.images", "dataset.captions", "dataset.buckets", "dataset.steps"):
        assert results[check_id].status == "skipped", check_id
        assert "see Dataset folders" in results[check_id].skipped_reason
