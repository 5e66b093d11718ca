""""No data found" (exit 0) is named from the command's --train_data_dir, on real folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lora_doctor.launch.command import parse_command
from lora_doctor.diagnose.match import diagnose_text, load_signatures
from support import DATA

CORPUS = DATA / "corpus" / "sdscripts-runs.dev.jsonl"


def h4() -> dict:
    return next(c for c in map(json.loads, CORPUS.read_text("utf-8").splitlines()) if c["id"].startswith("h4_"))


@pytest.fixture(scope="module")
def host():
    return load_signatures()[1]


def diagnose(host, data_dir, *extra, log=None):
    case = h4()
    argv = ["accelerate", "launch", "train_network.py", f"--train_data_dir={data_dir}", "--resolution=64,64", *extra]
    report = diagnose_text(log if log is not None else case["log"], exit_code=0, launch=parse_command(argv), host=host)
    return report.diagnoses


def png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)


def test_missing_folder_is_not_found(host, tmp_path):
    d = diagnose(host, tmp_path / "linart")
    assert d[0].signature_id == "dataset.train_data_dir_not_found"
    assert "does not exist" in d[0].evidence[0]


def test_image_folder_itself_is_not_parent_and_the_fix_names_the_parent(host, tmp_path):
    leaf = tmp_path / "img" / "10_mychar"
    png(leaf / "a.png")
    d = diagnose(host, leaf)
    assert d[0].signature_id == "dataset.train_data_dir_not_parent"
    parent = tmp_path / "img"
    assert f"--train_data_dir={parent} " in d[0].fix_command + " " or d[0].fix_command.endswith(f"--train_data_dir {parent}")
    assert "10_mychar" not in d[0].fix_command
    assert d[0].why and d[0].fix


def test_subfolders_without_repeats_prefix(host, tmp_path):
    png(tmp_path / "img" / "mychar" / "a.png")
    assert diagnose(host, tmp_path / "img")[0].signature_id == "dataset.folder_without_repeats_prefix"


@pytest.mark.parametrize("name", ["a.gif", "a.Jpg", "nested/a.png"])
def test_no_supported_image_directly_in_the_concept_folder(host, tmp_path, name):
    png(tmp_path / "img" / "10_mychar" / name)
    assert diagnose(host, tmp_path / "img")[0].signature_id == "dataset.no_images"


def test_a_good_layout_leaves_the_log_reading(host, tmp_path):
    png(tmp_path / "img" / "10_mychar" / "a.png")
    assert [x.signature_id for x in diagnose(host, tmp_path / "img")][:1] == ["dataset.train_data_dir_not_parent"]


def test_no_look_at_the_folder_without_no_data_or_with_a_dataset_config(host, tmp_path):
    clean = "                    INFO     model saved.                              train_network.py:1729\n"
    assert diagnose(host, tmp_path / "missing", log=clean) == []
    d = diagnose(host, tmp_path / "missing", f"--dataset_config={tmp_path / 'd.toml'}")
    assert [x.signature_id for x in d][:1] == ["dataset.train_data_dir_not_parent"]


def test_missing_reg_data_dir_is_named_in_a_run_that_otherwise_succeeded(host, tmp_path):
    baseline = next(c for c in map(json.loads, CORPUS.read_text("utf-8").splitlines()) if c["id"] == "baseline")
    png(tmp_path / "img" / "10_mychar" / "a.png")
    argv = ["accelerate", "launch", "train_network.py", f"--train_data_dir={tmp_path / 'img'}",
            f"--reg_data_dir={tmp_path / 'regs'}"]
    d = diagnose_text(baseline["log"], exit_code=0, launch=parse_command(argv), host=host).diagnoses
    assert [x.signature_id for x in d] == ["dataset.reg_data_dir_not_found"]
    assert d[0].severity == "warn" and str(tmp_path / "regs") in d[0].evidence[0]
    (tmp_path / "regs").mkdir()
    assert diagnose_text(baseline["log"], exit_code=0, launch=parse_command(argv), host=host).diagnoses == []


def test_reg_data_dir_that_holds_the_images_is_not_parent(host, tmp_path):
    baseline = next(c for c in map(json.loads, CORPUS.read_text("utf-8").splitlines()) if c["id"] == "baseline")
    png(tmp_path / "img" / "10_mychar" / "a.png")
    png(tmp_path / "reg" / "1_person" / "r.png")
    argv = ["accelerate", "launch", "train_network.py", f"--train_data_dir={tmp_path / 'img'}",
            f"--reg_data_dir={tmp_path / 'reg' / '1_person'}"]
    d = diagnose_text(baseline["log"], exit_code=0, launch=parse_command(argv), host=host).diagnoses
    assert [x.signature_id for x in d][:1] == ["dataset.reg_data_dir_not_parent"]
    assert f"--reg_data_dir={tmp_path / 'reg'}" in d[0].fix_command.replace("'", "")


def test_captions_saved_with_another_extension_are_found_on_disk(host, tmp_path):
    case = next(c for c in map(json.loads, CORPUS.read_text("utf-8").splitlines()) if c["id"].startswith("e2_"))
    for i in range(3):
        png(tmp_path / "img" / "10_mychar" / f"{i}.png")
        (tmp_path / "img" / "10_mychar" / f"{i}.txt").write_text("a drawing", encoding="utf-8")
    argv = ["accelerate", "launch", "train_network.py", f"--train_data_dir={tmp_path / 'img'}", "--caption_extension=.caption"]
    d = diagnose_text(case["log"], exit_code=0, launch=parse_command(argv), host=host).diagnoses
    assert d[0].signature_id == "dataset.caption_extension_mismatch"
    assert "--caption_extension=.txt" in d[0].fix_command
    for i in range(3):
        (tmp_path / "img" / "10_mychar" / f"{i}.txt").unlink()
    d = diagnose_text(case["log"], exit_code=0, launch=parse_command(argv), host=host).diagnoses
    assert all(x.source != "plugin no_data_diagnose" for x in d)  # no caption file anywhere: the folder says nothing
