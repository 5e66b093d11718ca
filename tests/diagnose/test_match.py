"""Matching and ranking: signatures from plugin folders, code matchers, the report's JSON."""

from __future__ import annotations

import json
import textwrap
import time

import pytest

from lora_doctor.launch.command import parse_command
from lora_doctor.diagnose.match import diagnose_file, diagnose_text
from lora_doctor.host.pluginmanager import PluginHost

CODE_ONLY = ("lora_doctor.plugins.diagnose_code",)


def has_opt(command: str, name: str, value: str) -> bool:
    """The corrected command sets --name to value (as `--name value` or `--name=value`)."""
    return f"--{name} {value}" in command or f"--{name}={value}" in command


@pytest.fixture(autouse=True)
def _no_user_plugins(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("LORA_DOCTOR_PLUGIN_PATH", raising=False)


def host_with(tmp_path, *files: str, builtins=CODE_ONLY) -> PluginHost:
    folder = tmp_path / "sigs"
    folder.mkdir(exist_ok=True)
    for i, text in enumerate(files):
        (folder / f"s{i}.toml").write_text(textwrap.dedent(text), encoding="utf-8")
    return PluginHost([str(folder)], builtins=builtins, entry_points=False)


LOG = """\
Traceback (most recent call last):
  File "/sd/library/train_util.py", line 1634, in __getitem__
    assert (
AssertionError: image too large, but cropping and bucketing are disabled: /data/1_x/big.png
"""

GENERIC = """
[[signature]]
id = "test.any_assertion"
title = "Some assertion failed"
[signature.match]
exception = ["AssertionError"]
fix = ["generic"]
"""
SPECIFIC = """
[[signature]]
id = "dataset.image_too_large_no_bucket"
title = "{image} is larger than the resolution"
[signature.match]
exception = ["AssertionError"]
message = 'image too large.*: (?P<image>\\S+)$'
frame = 'train_util\\.py:__getitem__'
why = "Resolution is {option:resolution}, bucketing is off."
fix = ["Turn bucketing on for {image}."]
refs = ["https://example.invalid/bucket"]
[signature.edit]
add = ["--enable_bucket"]
remove = ["--cache_latents"]
set = { resolution = "512,512" }
"""


def test_the_more_specific_signature_wins_and_the_other_is_listed(tmp_path):
    report = diagnose_text(LOG, host=host_with(tmp_path, GENERIC, SPECIFIC))
    assert [d.signature_id for d in report.diagnoses] == ["dataset.image_too_large_no_bucket", "test.any_assertion"]
    assert report.diagnoses[0].confidence > report.diagnoses[1].confidence


def test_priority_beats_specificity(tmp_path):
    urgent = GENERIC.replace('title = "Some assertion failed"', 'title = "x"\npriority = 90')
    report = diagnose_text(LOG, host=host_with(tmp_path, urgent, SPECIFIC))
    assert report.diagnoses[0].signature_id == "test.any_assertion"


def test_fix_text_placeholders_and_corrected_command(tmp_path):
    launch = parse_command(["accelerate", "launch", "--num_processes", "1", "train_network.py",
                            "--resolution=1024,1024", "--cache_latents", "--hf_token", "hf_abcdefghijklmnopqrstuvwxyz",
                            "--output_dir", "/out dir"])
    report = diagnose_text(LOG, launch=launch, host=host_with(tmp_path, SPECIFIC))
    d = report.diagnoses[0]
    assert d.title == "/data/1_x/big.png is larger than the resolution"
    assert d.why == "Resolution is 1024,1024, bucketing is off."
    assert d.fix[0] == "Turn bucketing on for /data/1_x/big.png."
    assert d.fix[-1] == "Change the command: add --enable_bucket; set --resolution=512,512; remove --cache_latents."
    assert d.fix_command.startswith("accelerate launch --num_processes 1 train_network.py")
    assert "--enable_bucket" in d.fix_command and has_opt(d.fix_command, "resolution", "512,512")
    assert "--cache_latents" not in d.fix_command and "1024" not in d.fix_command
    assert "'/out dir'" in d.fix_command
    assert "hf_abcdefghijklmnopqrstuvwxyz" not in d.fix_command
    assert d.refs == ["https://example.invalid/bucket"]


def test_log_conditions_and_exit_code(tmp_path):
    sig = """
    [[signature]]
    id = "dataset.no_data"
    title = "No data"
    [signature.match]
    log_all = ['No data found']
    log_none = ['Traceback']
    exit_code = [0]
    fix = ["point it at the parent folder"]
    """
    host = host_with(tmp_path, sig)
    text = "INFO start\nERROR No data found. Please verify arguments\n"
    assert diagnose_text(text, exit_code=0, host=host).diagnoses[0].signature_id == "dataset.no_data"
    assert diagnose_text(text, exit_code=1, host=host).diagnoses == []
    assert diagnose_text(text + LOG, exit_code=0, host=host).diagnoses == []
    assert diagnose_text("all good\n", exit_code=0, host=host).diagnoses == []


def test_a_bad_file_costs_only_itself(tmp_path):
    broken_toml = "[[signature]]\nid = 'x.y'\ntitle = \n"
    bad_schema = """
    [[signature]]
    id = "test.bad"
    title = "Bad"
    colour = "red"
    [signature.match]
    message = '(unclosed'
    fix = ["x"]
    """
    report = diagnose_text(LOG, host=host_with(tmp_path, broken_toml, bad_schema, SPECIFIC))
    assert report.diagnoses[0].signature_id == "dataset.image_too_large_no_bucket"
    errors = "\n".join(report.signature_errors)
    assert "s0.toml:3: not valid TOML" in errors
    assert "s1.toml:5: unknown key 'colour'" in errors
    assert "s1.toml:6: match.message: regex '(unclosed' does not compile" in errors


def test_a_nested_quantifier_from_a_plugin_folder_is_refused(tmp_path):
    evil = """
    [[signature]]
    id = "test.evil"
    title = "Evil"
    [signature.match]
    log_any = ['(a+)+$']
    fix = ["x"]
    """
    log = ("a" * 5000 + "b\n") * 20 + LOG
    start = time.monotonic()
    report = diagnose_text(log, host=host_with(tmp_path, evil, SPECIFIC))
    assert time.monotonic() - start < 5
    assert report.diagnoses[0].signature_id == "dataset.image_too_large_no_bucket"
    assert any("nests quantifiers" in e for e in report.signature_errors)


def test_a_catastrophic_regex_the_static_check_misses_is_stopped_by_the_time_budget(tmp_path):
    evil = """
    [[signature]]
    id = "test.evil"
    title = "Evil"
    [signature.match]
    log_any = ['^(a|aa)+$']
    fix = ["x"]
    """
    log = "a" * 60 + "b\n" + LOG
    start = time.monotonic()
    report = diagnose_text(log, host=host_with(tmp_path, evil, SPECIFIC))
    assert time.monotonic() - start < 5
    assert [d.signature_id for d in report.diagnoses] == ["dataset.image_too_large_no_bucket"]
    assert any("took longer than" in e and "s0.toml" in e for e in report.signature_errors)


OOM_OLD = """\
Traceback (most recent call last):
  File "/sd/train_network.py", line 900, in train
    noise_pred = unet(noisy_latents, timesteps, text_embeddings)
torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.01 GiB (GPU 0; 3.78 GiB total capacity; 2.46 GiB already allocated; 481.06 MiB free; 2.49 GiB reserved in total by PyTorch) If reserved memory is >> allocated memory try setting max_split_size_mb to avoid fragmentation.
"""


def test_oom_names_the_figures_and_what_to_change_first(tmp_path):
    launch = parse_command(["accelerate", "launch", "train_network.py", "--train_batch_size=4",
                            "--resolution=768,768", "--mixed_precision=no"])
    report = diagnose_text(OOM_OLD, launch=launch, host=host_with(tmp_path))
    d = report.diagnoses[0]
    assert d.signature_id == "cuda.oom"
    assert "2.01 GiB" in d.why and "481 MiB" in d.why and "3.78 GiB" in d.why and "batch size (now 4)" in d.why
    assert d.fix[0].startswith("Train in mixed precision: --mixed_precision=fp16")
    assert any("--train_batch_size=2 with --gradient_accumulation_steps=2" in s for s in d.fix)
    assert has_opt(d.fix_command, "mixed_precision", "fp16") and "--gradient_checkpointing" in d.fix_command
    # issue 12 item 5: the corrected command lowers the batch that was just raised, as the fix says
    assert has_opt(d.fix_command, "train_batch_size", "2") and "--train_batch_size=4" not in d.fix_command
    assert has_opt(d.fix_command, "gradient_accumulation_steps", "2")


def test_oom_without_the_command_claims_no_settings(tmp_path):
    d = diagnose_text(OOM_OLD, host=host_with(tmp_path)).diagnoses[0]
    assert d.signature_id == "cuda.oom" and "2.01 GiB" in d.why
    assert "now" not in d.why and d.fix_command == ""
    assert "-- <your training command>" in d.fix[-1]


def test_oom_new_format_and_a_matching_signature_merge(tmp_path):
    sig = """
    [[signature]]
    id = "cuda.oom"
    title = "The GPU ran out of memory"
    [signature.match]
    message = 'CUDA out of memory'
    log_any = ['CUDA out of memory']
    why = "Signature text."
    fix = ["signature step"]
    refs = ["https://example.invalid/oom"]
    """
    text = ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity "
            "of 23.65 GiB of which 3.31 MiB is free. Including non-PyTorch memory, this process has 23.6 GiB "
            "memory in use.\n")
    report = diagnose_text(text, host=host_with(tmp_path, sig))
    assert [d.signature_id for d in report.diagnoses] == ["cuda.oom"]
    d = report.diagnoses[0]
    assert "20 MiB" in d.why and "23.65 GiB" in d.why and "Signature text." in d.why
    assert "signature step" not in d.fix and "https://example.invalid/oom" in d.refs
    assert d.fix[0].startswith("Train in mixed precision")
    assert len(d.evidence) == 1  # the log line and the exception line are the same


def test_nan_loss_with_a_huge_learning_rate(tmp_path):
    launch = parse_command(["accelerate", "launch", "train_network.py", "--learning_rate=1e6"])
    bars = "".join(f"steps: {i * 10}%|#| {i}/10 [00:01<00:01, avr_loss={'nan' if i > 2 else '1.1'}]\n"
                   for i in range(1, 11))
    report = diagnose_text(bars + "saving checkpoint\n", launch=launch, exit_code=0, host=host_with(tmp_path))
    d = report.diagnoses[0]
    assert d.signature_id == "train.loss_nan"
    assert d.fix[0].startswith("Lower the learning rate: 1e+06")
    assert has_opt(d.fix_command, "learning_rate", "1e-4")
    assert "avr_loss=nan" in d.evidence[0] and "3/10" in d.evidence[0]


@pytest.mark.parametrize("text,exit_code,cause", [
    ("loading checkpoint\nKilled\n", None, "os.process_killed_out_of_ram"),
    ("loading checkpoint\n", -9, "os.process_killed_out_of_ram"),
    ("loading checkpoint\n", 137, "os.process_killed_out_of_ram"),
    ("OSError: [WinError 1455] The paging file is too small for this operation to complete.\n", 1,
     "os.windows_paging_file_too_small"),
])
def test_killed_process(tmp_path, text, exit_code, cause):
    report = diagnose_text(text, exit_code=exit_code, host=host_with(tmp_path))
    assert report.diagnoses[0].signature_id == cause
    assert report.failed


def test_access_violation_gets_no_made_up_cause(tmp_path):
    report = diagnose_text("loading\n", exit_code=3221225477, host=host_with(tmp_path))
    assert report.diagnoses == [] and report.failed
    assert report.exit.ntstatus == "0xC0000005 access violation"


def test_report_json_shape_and_secrets(tmp_path):
    text = LOG.replace("/data/1_x/big.png", "/data/hf_abcdefghijklmnopqrstuvwxyz/big.png")
    report = diagnose_text(text, exit_code=1, host=host_with(tmp_path, SPECIFIC))
    data = report.to_json()
    dumped = json.dumps(data)
    assert "hf_abcdefghijklmnopqrstuvwxyz" not in dumped
    assert set(data) >= {"diagnoses", "failures", "exit", "signature_errors"}
    assert set(data["diagnoses"][0]) >= {"id", "title", "confidence", "evidence", "why", "fix", "fix_command", "refs"}
    assert set(data["failures"][0]) >= {"exception", "message", "frames", "rank"}
    assert data["exit"]["code"] == 1


def test_diagnose_file_streams_the_same_result(tmp_path):
    path = tmp_path / "train.log"
    path.write_bytes(("steps: 1%|#| 1/100\n" * 50000 + LOG).encode())
    host = host_with(tmp_path, SPECIFIC)
    assert diagnose_file(path, host=host).diagnoses[0].signature_id == "dataset.image_too_large_no_bucket"


def test_a_raising_code_matcher_is_isolated(tmp_path):
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "boom.py").write_text(
        "from lora_doctor import hookimpl\n\n@hookimpl\ndef lora_doctor_diagnose(failure, postmortem):\n"
        "    '''Always raises.'''\n    raise RuntimeError('boom')\n")
    (plugin_dir / "s.toml").write_text(textwrap.dedent(SPECIFIC))
    host = PluginHost([str(plugin_dir)], builtins=CODE_ONLY, entry_points=False)
    report = diagnose_text(LOG, host=host)
    assert report.diagnoses[0].signature_id == "dataset.image_too_large_no_bucket"
    assert any("boom" in e for e in report.plugin_errors)


def test_the_word_filter_on_big_chunks_finds_what_a_plain_search_finds():
    import re

    from lora_doctor.diagnose.signatures import LineScanner

    filler = "steps: 1/2 epoch is incremented current_epoch: 0 train_util.py:784\n" * 8000
    text = filler + "xValueError: x happened\nNo data found. Please verify arguments\nsee defg tail\n" + filler
    patterns = [re.compile(p, re.MULTILINE) for p in (
        r"rror: x", r"No data found\. Please verify", r"(?:abc|defg) tail", r"(?i)NO DATA", r"^see\b",
        r"missing piece here", r"ValueError: y", r"(?:zzzz|yyyy) tail")]
    assert len(text) > LineScanner.FILTER_FROM
    scanner = LineScanner(patterns)
    scanner.scan(text)
    for rx in patterns:
        assert (scanner.hit(rx) is not None) == (rx.search(text) is not None), rx.pattern


LOG_LINE_SIG = """
[[signature]]
id = "test.by_log_line"
title = "Matched on a log line"
[signature.match]
log_any = ['bucket_reso_steps is \\d+\\. it must be divisible by']
fix = ["fix it"]
"""


def test_a_log_line_that_is_the_root_exception_line_is_root_evidence(tmp_path):
    """A log-line rule that hits the root failure's own exception line is not a side remark."""
    host = host_with(tmp_path, LOG_LINE_SIG)
    on_root = diagnose_text("Traceback (most recent call last):\n  File \"/sd/a.py\", line 1, in f\n"
                            "AssertionError: bucket_reso_steps is 48. it must be divisible by 32.\n", host=host)
    elsewhere = diagnose_text("WARNING bucket_reso_steps is 48. it must be divisible by 32.\n"
                              "ValueError: something else\n", host=host)
    assert on_root.diagnoses[0].confidence > 0.6
    assert elsewhere.diagnoses[0].confidence < on_root.diagnoses[0].confidence - 0.2


WHEN_SHOWN = """
[[signature]]
id = "test.sampler_none"
title = "Sampler got None"
[signature.match]
exception = ["AttributeError"]
message = "'NoneType' object has no attribute 'to'"
frame_when_shown = 'sample_image'
fix = ["fix it"]
"""


@pytest.mark.parametrize("frames,found", [
    ("", True),  # pasted alone: nothing contradicts it
    ("  File \"/sd/library/train_util.py\", line 5520, in sample_image_inference\n", True),
    ("  File \"/home/me/gen.py\", line 52, in run\n", False),  # someone else's code
])
def test_frame_when_shown(tmp_path, frames, found):
    host = host_with(tmp_path, WHEN_SHOWN)
    head = "Traceback (most recent call last):\n" if frames else ""
    report = diagnose_text(head + frames + "AttributeError: 'NoneType' object has no attribute 'to'\n", host=host)
    assert bool(report.diagnoses) is found


def test_a_message_wrapped_by_the_console_still_matches():
    """rich prints the exception message wrapped at the console width, mid-phrase and mid-Japanese."""
    box = ("╭────── Traceback (most recent call last) ──────╮\n"
           "│ /sd/library/train_util.py:1634 in __getitem__  │\n"
           "╰────────────────────────────────────────────────╯\n")
    log = (box + "AssertionError: image too large, but cropping and\n"
           "bucketing are disabled / 画像サイズが大きいのでface_crop_aug_rangeかrandom_crop、または\n"
           "bucketを有効にしてください: /data/10_x/big.png\n")
    ids = [d.signature_id for d in diagnose_text(log).diagnoses]
    assert ids[:1] == ["dataset.image_too_large_no_bucket"]
    ids = [d.signature_id for d in diagnose_text(box + "AssertionError: 画像サイズが大きいのでface_crop_aug_rangeかrandom_\ncrop、またはbucketを有効にしてください\n").diagnoses]
    assert ids[:1] == ["dataset.image_too_large_no_bucket"]


# -- a message pasted alone; any letter case -------------------------------------------------------
def _corpus_log(case_id: str, name: str = "real-issues-2.dev.jsonl") -> str:
    from support import DATA

    for line in (DATA / "corpus" / name).read_text("utf-8").splitlines():
        row = json.loads(line)
        if row["id"] == case_id:
            return row["log"]
    raise KeyError(case_id)


def _exception_line(text: str, prefix: str) -> str:
    return next(x.strip() for x in text.splitlines() if x.strip().startswith(prefix))


@pytest.mark.parametrize("form", [
    lambda line: line,  # the exception line alone
    lambda line: line.split(": ", 1)[1],  # the message alone, as in an issue title
    lambda line: line.split(": ", 1)[1].lower(),  # ... lower-cased by the forum
    lambda line: "2024-05-01 12:00:00 ERROR    " + line.split(": ", 1)[1] + "      train_util.py:4219",
    lambda line: "> *" + line.split(": ", 1)[1] + "*",
])
def test_a_message_pasted_alone_names_its_cause(form):
    line = _exception_line(_corpus_log("bk93-bf16-unsupported"), "ValueError: bf16")
    report = diagnose_text(form(line) + "\n")
    assert report.diagnoses[0].signature_id == "cuda.bf16_unsupported_gpu"
    root = report.failures[0]
    assert root.message.lower().startswith("bf16 mixed precision requires")


def test_a_message_alone_is_not_read_where_the_log_has_an_error_of_its_own_or_as_a_warning():
    line = _exception_line(_corpus_log("bk93-bf16-unsupported"), "ValueError: bf16")
    message = line.split(": ", 1)[1]
    other = _corpus_log("bk3139-no-module-xformers-linux")  # a real traceback of another cause
    report = diagnose_text(message + "\n" + other)
    assert report.diagnoses[0].signature_id == "versions.xformers_missing"
    assert report.failures[0].exception == "ImportError"
    warned = diagnose_text(f"UserWarning: {message}\n")
    assert warned.diagnoses == []


def test_exception_types_and_messages_match_in_any_letter_case():
    text = _corpus_log("bk2823-accelerate-config-tpu-use-cluster")
    assert diagnose_text(text).diagnoses[0].signature_id == "versions.accelerate_config_incompatible"
    assert diagnose_text(text.lower()).diagnoses[0].signature_id == "versions.accelerate_config_incompatible"
    assert diagnose_text(text.upper()).diagnoses[0].signature_id == "versions.accelerate_config_incompatible"


def test_the_scanner_tries_another_case_only_where_the_words_are_in_another_case():
    import re

    from lora_doctor.diagnose.scanner import LineScanner

    filler = "2026-11-25 08:18:22 INFO     epoch is incremented. current_epoch: 0, epoch: 1   train_util.py:784\n" * 4000
    rx = re.compile(r"No data found\. Please verify", re.MULTILINE)
    calls = []

    class Guard:
        timed_out: set = set()

        def search(self, pattern, text):
            calls.append(pattern.flags & re.IGNORECASE)
            return pattern.search(text)

    for text, folded in ((filler + "no data found. please verify arguments\n", True),
                         (filler + "nothing to see\n", False),  # the words are not there at all
                         (filler.replace("epoch", "Found") + "nothing\n", False)):  # only in this case: no fallback
        calls.clear()
        scanner = LineScanner([rx], Guard())
        assert len(text) > LineScanner.FILTER_FROM
        scanner.scan(text, 1)
        assert (scanner.hit(rx) is not None) == folded
        assert any(calls) == folded
        if folded:
            assert scanner.line_no(rx) == 4001


def test_message_regexes_anchored_at_the_start_also_find_the_message_after_a_prefix():
    import re

    from lora_doctor.diagnose.scanner import locator

    rx = re.compile(r"(?:^'utf-8' codec can't decode)|(?:^caption file is empty)", re.MULTILINE)
    loc = locator(rx)
    assert loc.search("12:00:00 ERROR caption file is empty: a.txt") and not rx.search("ERROR caption file is empty")
    plain = re.compile(r"bf16 mixed precision requires")
    assert locator(plain) is plain
