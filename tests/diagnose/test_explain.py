"""Explanations of sd-scripts' own messages: the generated catalogue, finding its messages in logs
(any case, markdown, one language half), `diagnose --json`'s `explanations`, the terminal, and
re-reading the check from the user's own checkout."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support import DATA, ROOT, run_cli
from lora_doctor.diagnose import explain
from lora_doctor.diagnose.explain import catalogue, explain_lines
from lora_doctor.diagnose.sdscripts_source import extract_messages
from lora_doctor.diagnose.match import diagnose_text

MIRROR = Path(os.environ.get("LORA_DOCTOR_SDSCRIPTS_MIRROR", "/work/.mirror/kohya-ss+sd-scripts/repo"))
FIELDS = ("id", "kind", "exception", "file", "function", "line", "condition", "options", "message", "pattern",
          "first", "last")

NO_DATA = ("No data found. Please verify arguments (train_data_dir must be the parent of folders with images) / "
           "画像がありません。引数指定を確認してください（train_data_dirには画像があるフォルダではなく、画像があるフォルダの"
           "親フォルダを指定する必要があります）")
CAPTION_EMPTY = "caption file is empty / キャプションファイルが空です: /data/10_dog/img_001.txt"


def by_message(text: str) -> dict:
    hits = [e for e in catalogue()["messages"] if e.get("message") == text]
    assert hits, f"not catalogued: {text}"
    return hits[0]


# -- the catalogue -------------------------------------------------------------------------------
def test_catalogue_has_every_field_and_the_versions():
    cat = catalogue()
    versions = cat["versions"]
    assert versions[0] == "v0.6.0" and versions[-1] == "main" and len(versions) >= 20
    messages = cat["messages"]
    assert len(messages) >= 150
    ids = [e["id"] for e in messages]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for e in messages:
        assert all(k in e for k in FIELDS), e
        assert e["first"] in versions and e["last"] in versions
        assert versions.index(e["first"]) <= versions.index(e["last"])
        assert isinstance(e["line"], int) and e["line"] > 0
        assert e["condition"] and e["function"]
        assert e["file"].endswith(".py") and not e["file"].startswith("/")
        if e["message"]:
            re.compile(e["pattern"])
            for half in e.get("halves", ()):
                re.compile(half)


def test_catalogue_conditions_are_generated_words_not_source():
    for e in catalogue()["messages"]:
        cond = e["condition"]
        for code in ("args.", "==", "!=", "len(", "isinstance(", "os.path.", "lambda", " is None"):
            assert code not in cond, (e["id"], cond)


def test_known_checks_are_described_with_their_options():
    both = by_message("v_pred_like_loss cannot be enabled with v_parameterization / "
                      "v_pred_like_lossはv_parameterizationが有効なときには有効にできません")
    assert both["file"] == "library/train_util.py" and both["exception"] == "ValueError"
    assert both["condition"] == "when --v_pred_like_loss and --v_parameterization are both set"
    assert both["options"] == ["v_parameterization", "v_pred_like_loss"]
    assert both["first"] == "v0.7.0"  # the option came in v0.7.0

    no_data = by_message(NO_DATA)
    assert no_data["kind"] == "log" and no_data["file"] == "train_network.py"
    assert no_data["condition"] == "when the number of train_dataset_group is 0"


def test_message_halves_and_placeholders():
    e = by_message("caption file is empty / キャプションファイルが空です: {cap_path}")
    assert e["halves"][0] == r"caption\s+file\s+is\s+empty"
    assert re.search(e["pattern"], CAPTION_EMPTY)
    assert re.search(e["halves"][1], "キャプションファイルが空です: x.txt")


@pytest.mark.skipif(not MIRROR.is_dir(), reason="no sd-scripts mirror here (LORA_DOCTOR_SDSCRIPTS_MIRROR)")
def test_generator_rebuilds_the_shipped_file_byte_for_byte(tmp_path):
    out = tmp_path / "messages.json"
    subprocess.run([sys.executable, str(ROOT / "tools" / "sdscripts_catalogue.py"), str(MIRROR), "--out", str(out)],
                   check=True, capture_output=True, timeout=300)
    shipped = ROOT / "lora_doctor" / "data" / "sdscripts_messages.json"
    assert out.read_bytes() == shipped.read_bytes()
    assert shipped.stat().st_size < 1 << 20


# -- condition words from the AST -----------------------------------------------------------------
def test_conditions_in_words():
    src = '''
def check(args, items):
    if args.v2 and args.sdxl:
        raise ValueError("v2 and sdxl together are not possible here")
    assert len(items) == 1, f"need exactly one item, got {len(items)}"
    size = args.resolution
    if size is None:
        logger.error("resolution missing, stopping now")
        return
    if not os.path.exists(args.train_data_dir):
        raise FileNotFoundError(f"folder {args.train_data_dir} does not exist at all")
    assert args.max_steps > 0
'''
    sites = {s["message"]: s for s in extract_messages(src, "x.py")}
    assert sites["v2 and sdxl together are not possible here"]["condition"] == "when --v2 and --sdxl are both set"
    assert sites["need exactly one item, got {len}"]["condition"] == "unless the number of items is 1"
    log = sites["resolution missing, stopping now"]
    assert log["kind"] == "log" and log["condition"] == "when --resolution is not set"
    assert log["options"] == ["resolution"]
    missing = sites["folder {train_data_dir} does not exist at all"]
    assert missing["condition"] == "when the path --train_data_dir does not exist"
    bare = sites[None]  # no message, but it reads an option: kept
    assert bare["condition"] == "unless --max_steps is greater than 0" and bare["options"] == ["max_steps"]


def test_internal_asserts_without_message_or_option_are_skipped_and_plain_prints_are_not_aborts():
    src = '''
def f(x):
    assert x > 0
    print("loading the model")
    return x
    print("no images found, nothing to do")
    return
'''
    messages = [s["message"] for s in extract_messages(src, "x.py")]
    assert messages == ["no images found, nothing to do"]


# -- finding messages in a log --------------------------------------------------------------------
def _corpus_logs():
    for name in ("real-issues.dev.jsonl", "real-issues-2.dev.jsonl", "sdscripts-runs.dev.jsonl"):
        for line in (DATA / "corpus" / name).read_text("utf-8").splitlines():
            if line.strip():
                yield json.loads(line)


def test_real_corpus_messages_are_explained_with_the_right_source():
    expected = {  # corpus case -> the sd-scripts file the message comes from
        "a1_image_too_large_no_bucket": "library/train_util.py",
        "bk216-no-data-found-subfolder-path": "train_network.py",
        "fg144-fluxgym-wrote-empty-caption-file": "library/train_util.py",
        "s20_log_with_wandb_not_installed": "library/train_util.py",
    }
    seen = {}
    for case in _corpus_logs():
        if case["id"] in expected:
            report = diagnose_text(case["log"])
            seen[case["id"]] = [x["source"].rsplit(":", 1)[0] for x in report.explanations]
    assert set(seen) == set(expected)
    for cid, source in expected.items():
        assert seen[cid][:1] == [source], (cid, seen[cid])


def test_one_line_lower_case_markdown_and_either_half():
    want = by_message("caption file is empty / キャプションファイルが空です: {cap_path}")["id"]
    forms = [
        f"AssertionError: {CAPTION_EMPTY}",
        CAPTION_EMPTY.lower(),
        f"> `AssertionError: {CAPTION_EMPTY.upper()}`",
        "I get **caption file is empty** every time",
        "キャプションファイルが空です: /data/x.txt",
    ]
    for form in forms:
        got = explain_lines([form])
        assert [x["id"] for x in got][:1] == [want], form
        x = got[0]
        assert x["source"].startswith("library/train_util.py:") and x["function"] == "read_caption"
        assert x["versions"].startswith("v0.6.0–")
        assert "lines" in x["condition"]
    # GitHub's markdown escapes underscores outside code blocks
    escaped = NO_DATA.split(" / ")[0].replace("_", "\\_")
    assert [x["source"] for x in explain_lines([escaped])][:1] == [f"train_network.py:{by_message(NO_DATA)['line']}"]


def test_no_explanation_for_other_text_or_inside_a_word():
    assert explain_lines(["caption files are fine", "INFO loading model", ""]) == []
    # sd-scripts logs "Error: Key not found in diffusers_to_bfl_map" and raises KeyError("Key not found …"):
    # the raise is what this line shows, not the log line ("error: key" inside "KeyError: Key")
    got = explain_lines(["KeyError: Key not found in diffusers_to_bfl_map: lora_unet_x"])
    assert [x["exception"] for x in got] == ["KeyError"]


def test_a_message_torch_shares_is_not_sd_scripts_when_torch_raised_it():
    message = 'Error(s) in loading state_dict for CLIPTextModel:\n\tMissing key(s) in state_dict: "a.b".'
    torch_tb = ('Traceback (most recent call last):\n'
                '  File "/sd/train_network.py", line 10, in <module>\n    train(args)\n'
                '  File "/venv/lib/torch/nn/modules/module.py", line 2152, in load_state_dict\n    raise RuntimeError(x)\n'
                f'RuntimeError: {message}\n')
    sd_tb = torch_tb.replace("/venv/lib/torch/nn/modules/module.py", "/sd/library/sdxl_model_util.py")
    assert diagnose_text(torch_tb).explanations == []
    got = diagnose_text(sd_tb).explanations
    assert got and got[0]["source"].startswith("library/sdxl_model_util.py:")


def test_source_lines_around_a_frame_are_not_the_message():
    log = ('Traceback (most recent call last):\n'
           '  File "/sd/library/train_util.py", line 10, in verify\n'
           '    assert False, "caption file is empty / キャプションファイルが空です"\n'
           '  File "/sd/library/train_util.py", line 20, in verify2\n'
           '    x = int(value)\n'
           "ValueError: invalid literal for int() with base 10: '768x768'\n")
    assert diagnose_text(log).explanations == []


def test_a_rich_record_folded_at_80_columns():
    log = ("ERROR No data found. Please verify arguments (train_data_dir must be the train_network.py:212\n"
           "parent of folders with images)\n")
    got = diagnose_text(log).explanations
    assert got and got[0]["source"].startswith("train_network.py:")


def test_a_message_at_the_end_of_a_big_log(tmp_path):
    import time

    log = tmp_path / "big.log"
    with open(log, "w", encoding="utf-8") as fh:
        line = "steps:  10%|█         | 100/1000 [00:10<01:30, 10.0it/s, avr_loss=0.1]\n"
        fh.write(line * 200_000)
        fh.write(f"AssertionError: {CAPTION_EMPTY}\n")
    from lora_doctor.diagnose.match import diagnose_file

    t = time.perf_counter()
    report = diagnose_file(log)
    took = time.perf_counter() - t
    assert [x["source"].split(":")[0] for x in report.explanations] == ["library/train_util.py"]
    assert took < 10


# -- the CLI --------------------------------------------------------------------------------------
def test_diagnose_json_has_explanations_and_no_made_up_diagnosis(tmp_path):
    log = tmp_path / "train.log"
    log.write_text('Traceback (most recent call last):\n'
                   '  File "/home/u/sd-scripts/library/train_util.py", line 1526, in get_crop_ltrb\n'
                   '    assert nh >= self.height\n'
                   'AssertionError: internal error. small scale 0.5, 512*768\n', encoding="utf-8")
    proc = run_cli(["diagnose", str(log), "--json"])
    assert proc.returncode == 1, proc.stderr  # a failure with no known cause
    out = json.loads(proc.stdout)
    assert out["diagnoses"] == []
    [x] = out["explanations"]
    assert x["source"].startswith("library/train_util.py:") and x["function"]
    assert x["condition"].startswith("unless ") and "height" in x["condition"]
    assert x["versions"] and x["options"] == [] and x["exception"] == "AssertionError"

    text = run_cli(["diagnose", str(log)])
    assert text.returncode == 1
    assert "No known cause matches this failure" in text.stdout
    assert "sd-scripts' own check (AssertionError, library/train_util.py:" in text.stdout
    assert "it stops unless" in text.stdout


def test_terminal_shows_options_for_a_logged_abort(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("2025-01-01 10:00:00 ERROR    No prompt file / プロンプトファイルがありません: /x/p.txt  "
                   "train_util.py:6396\n", encoding="utf-8")
    proc = run_cli(["diagnose", str(log), "-v"])  # it has a diagnosis: the explanation shows under -v
    assert "options involved: --sample_prompts" in proc.stdout
    assert "it stops when the path --sample_prompts is not a file" in proc.stdout


# -- the user's checkout --------------------------------------------------------------------------
# A tiny sd-scripts-like tree written here (our own code), whose check prints a catalogued message
# under another condition and on another line than the catalogue has.
FAKE_UTIL = '''import os


def verify_dataset(args):
    if args.resolution is None and not args.dataset_config:
        raise ValueError("resolution is required / resolution（解像度）指定は必須です")


def verify_steps(args):
    assert args.max_train_steps > 10
'''


def fake_checkout(tmp_path: Path) -> Path:
    root = tmp_path / "my sd-scripts"
    (root / "library").mkdir(parents=True)
    (root / "library" / "train_util.py").write_text(FAKE_UTIL, encoding="utf-8")
    (root / "train_network.py").write_text("from library import train_util\n", encoding="utf-8")
    (root / "requirements.txt").write_text("", encoding="utf-8")
    return root


def traceback_into(root: Path, function: str, line: int, exc_line: str) -> str:
    return ('Traceback (most recent call last):\n'
            f'  File "{root / "train_network.py"}", line 1, in <module>\n    main()\n'
            f'  File "{root / "library" / "train_util.py"}", line {line}, in {function}\n    check()\n'
            f'{exc_line}\n')


def test_checkout_condition_and_line_come_from_the_users_copy(tmp_path):
    root = fake_checkout(tmp_path)
    entry = by_message("resolution is required / resolution（解像度）指定は必須です")
    line = "ValueError: resolution is required / resolution（解像度）指定は必須です"

    plain = explain_lines([line])[0]
    assert plain["from"] == "catalogue" and plain["source"] == f"{entry['file']}:{entry['line']}"

    mine = explain_lines([line], checkout=root)[0]
    assert mine["from"] == "checkout" and mine["checkout"] == str(root)
    assert mine["source"] == "library/train_util.py:6" and mine["function"] == "verify_dataset"
    assert mine["condition"] == "when --resolution is not set and --dataset_config is not set"
    assert mine["options"] == ["dataset_config", "resolution"]
    assert mine["id"] == entry["id"]


def test_checkout_found_from_the_logs_frames_and_from_the_command(tmp_path):
    root = fake_checkout(tmp_path)
    log = tmp_path / "train.log"
    log.write_text(traceback_into(root, "verify_dataset", 6,
                                  "ValueError: resolution is required / resolution（解像度）指定は必須です"),
                   encoding="utf-8")
    out = json.loads(run_cli(["diagnose", str(log), "--json"], cwd=str(tmp_path)).stdout)
    [x] = [e for e in out["explanations"] if e["from"] == "checkout"]
    assert x["source"] == "library/train_util.py:6" and "--dataset_config is not set" in x["condition"]

    # a bare assert (no message) is found by where it was raised, in the user's copy
    log.write_text(traceback_into(root, "verify_steps", 10, "AssertionError"), encoding="utf-8")
    out = json.loads(run_cli(["diagnose", str(log), "--json", "--", "accelerate", "launch",
                              str(root / "train_network.py")], cwd=str(tmp_path)).stdout)
    [x] = out["explanations"]
    assert x["from"] == "checkout" and x["matched"] == "location"
    assert x["source"] == "library/train_util.py:10" and x["function"] == "verify_steps"
    assert x["condition"] == "unless --max_train_steps is greater than 10"
    assert out["diagnoses"] == []


def test_a_broken_catalogue_costs_only_the_explanations(monkeypatch):
    monkeypatch.setattr(explain, "_index", lambda: (_ for _ in ()).throw(ValueError("broken")))
    report = diagnose_text(f"AssertionError: {CAPTION_EMPTY}\n")
    assert report.explanations == [] and report.failures
