"""The log parser on the shapes real logs take: what a user would see named as the failure."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from lora_doctor.diagnose.logparse import MAX_LINE, exit_cause, parse_stream, parse_text
from support import DATA

CORPUS = DATA / "corpus"


def corpus_case(name: str, case_id: str) -> dict:
    for line in (CORPUS / name).read_text("utf-8").splitlines():
        row = json.loads(line)
        if row["id"] == case_id:
            return row
    raise KeyError(case_id)


PLAIN = """\
steps:   0%|          | 0/2 [00:00<?, ?it/s]
Traceback (most recent call last):
  File "/sd/train_network.py", line 1913, in <module>
    trainer.train(args)
  File "/sd/library/train_util.py", line 1634, in __getitem__
    assert (
AssertionError: image too large, but cropping and bucketing are disabled: /data/1_x/big.png

Traceback (most recent call last):
  File "/venv/bin/accelerate", line 6, in <module>
    sys.exit(main())
  File "/venv/lib/python3.11/site-packages/accelerate/commands/launch.py", line 795, in simple_launcher
    raise subprocess.CalledProcessError(returncode=process.returncode, cmd=cmd)
subprocess.CalledProcessError: Command '['/venv/bin/python3', 'train_network.py']' returned non-zero exit status 1.
"""


def test_root_is_the_childs_error_not_accelerates_wrapper():
    log = parse_text(PLAIN)
    assert [f.exception for f in log.failures] == ["AssertionError", "subprocess.CalledProcessError"]
    root = log.root
    assert root.exception == "AssertionError"
    assert root.message.startswith("image too large")
    assert root.frames[-1].file == "/sd/library/train_util.py" and root.frames[-1].line == 1634
    assert root.frames[-1].function == "__getitem__"
    assert log.failures[1].is_wrapper
    assert log.exit.code == 1


def test_chained_exceptions_fold_into_one_failure_with_causes():
    text = """Traceback (most recent call last):
  File "a.py", line 1, in f
    raise KeyError('x')
KeyError: 'x'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "b.py", line 2, in g
    raise ConnectionError()
requests.exceptions.ConnectionError: Max retries exceeded

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "c.py", line 3, in h
OSError: Cannot load model runwayml/stable-diffusion-v1-5: model is not cached locally
"""
    log = parse_text(text)
    assert len(log.failures) == 1
    root = log.root
    assert root.exception == "OSError"
    assert [c.exception for c in root.causes] == ["KeyError", "requests.exceptions.ConnectionError"]


def test_rich_box_traceback_frames_and_exception():
    row = corpus_case("real-issues.dev.jsonl", "bk965-clusterconfig-tpu-env")
    log = parse_text(row["log"])
    root = log.root
    assert root.exception == "TypeError"
    assert "unexpected keyword argument 'tpu_env'" in root.message
    assert root.frames and root.frames[0].function == "_run_module_as_main"


def test_rich_box_with_wrapped_frame_path():
    text = """\
╭─────────────────────────────── Traceback (most recent call last) ────────────────────────────────╮
│ C:\\Users\\me\\AppData\\Local\\Packages\\PythonSoftwareFoundation.Python.3.10_qbz5n2kfra8p0\\LocalCa │
│ che\\site-packages\\torch\\nn\\modules\\module.py:2041 in                                     │
│ load_state_dict                                                                                  │
│                                                                                                  │
│ ❱ 2041 │   │   │   raise RuntimeError('Error(s) in loading state_dict for {}:\\n\\t{}'.format(     │
╰──────────────────────────────────────────────────────────────────────────────────────────────────╯
RuntimeError: Error(s) in loading state_dict for UNet2DConditionModel:
	Missing key(s) in state_dict: "conv_in.weight".
"""
    root = parse_text(text).root
    assert root.exception == "RuntimeError"
    assert "Missing key(s)" in root.message
    frame = root.frames[-1]
    assert frame.file.endswith("LocalCache\\site-packages\\torch\\nn\\modules\\module.py")
    assert (frame.line, frame.function) == (2041, "load_state_dict")


def test_rank_prefixes_and_elastic_child_failed_summary():
    text = """\
[rank1]: Traceback (most recent call last):
[rank1]:   File "/sd/train_network.py", line 10, in <module>
[rank1]:     main()
[rank1]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 1 has a total capacity of 23.65 GiB of which 3.31 MiB is free.
[rank0]: Traceback (most recent call last):
[rank0]:   File "/sd/train_network.py", line 10, in <module>
[rank0]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.
Traceback (most recent call last):
  File "/venv/bin/torchrun", line 8, in <module>
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
train_network.py FAILED
------------------------------------------------------------
Failures:
  <NO_OTHER_FAILURES>
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2024-05-01_10:00:00
  host      : box
  rank      : 1 (local_rank: 1)
  exitcode  : 1 (pid: 4242)
  error_file: <N/A>
============================================================
"""
    log = parse_text(text)
    root = log.root
    assert root.exception == "torch.OutOfMemoryError" and root.rank == 1
    assert root.frames[0].file == "/sd/train_network.py"
    wrapper = log.failures[-1]
    assert wrapper.exception_name == "ChildFailedError" and wrapper.is_wrapper
    assert "Root Cause" in wrapper.message


def test_dataloader_worker_original_traceback_is_the_root():
    row = corpus_case("sdscripts-runs.dev.jsonl", "a1_image_too_large_no_bucket")
    log = parse_text(row["log"])
    assert log.root.message.startswith("image too large")
    assert log.root.frames[-1].function == "__getitem__"
    outer = log.failures[0]
    assert outer.message.startswith("Caught AssertionError in DataLoader worker") and outer.is_wrapper


@pytest.mark.parametrize("text,signal,ntstatus,code", [
    ("loading model\nKilled\n", 9, None, None),
    ("bash: line 1:  4242 Killed                  python train_network.py\n", 9, None, None),
    ("subprocess.CalledProcessError: Command '['python']' died with <Signals.SIGKILL: 9>.\n", 9, None, None),
    ("Command '['python.exe', 'train.py']' returned non-zero exit status 3221225477.\n", None,
     "0xC0000005 access violation", 3221225477),
    ("Process finished with exit code -1073740791\n", None, "0xC0000409 stack buffer overrun (fail-fast)",
     3221226505),
    ("  exitcode  : -9 (pid: 77)\n", 9, None, -9),
])
def test_exits_without_a_traceback(text, signal, ntstatus, code):
    log = parse_text(text)
    assert all(f.is_wrapper for f in log.failures)  # no real exception: only the exit tells
    assert log.exit is not None
    assert log.exit.signal == signal
    assert log.exit.ntstatus == ntstatus
    if code is not None:
        assert log.exit.code == code
    assert log.exit.description


def test_paging_file_error_is_a_failure_and_an_exit_description():
    text = "OSError: [WinError 1455] The paging file is too small for this operation to complete. " \
           "Error loading \"C:\\venv\\lib\\site-packages\\torch\\lib\\cudnn_cnn_infer64_8.dll\"\n"
    log = parse_text(text)
    assert log.root.exception == "OSError" and "WinError 1455" in log.root.message
    assert "paging file" in log.exit.description


def test_exit_cause_codes():
    assert exit_cause(-9).signal == 9
    assert exit_cause(137).signal == 9
    assert exit_cause(3221225786).ntstatus.startswith("0xC000013A")
    assert exit_cause(1).description == "exit code 1"


def test_rich_log_records_are_unfolded():
    row = corpus_case("sdscripts-runs.dev.jsonl", "h4_train_data_dir_not_found")
    log = parse_text(row["log"])
    wanted = [e for e in log.errors if "No data found" in e]
    assert wanted, log.errors
    record = wanted[0]
    assert "train_data_dir must be the parent of folders with images)" in record
    assert "画像がありません。引数指定を確認してください（train_data_dirには画像があるフォルダではなく" in record
    assert record.endswith("(train_network.py:576)")


def test_record_glued_to_a_progress_bar_is_split_off():
    text = ("steps:  50%|█████     | 1/2 [00:01<00:01,  1.92s/it]2026-11-25 08:43:05 INFO    "
            "                                                          train_util.py:6393\n"
            "                    ERROR    No prompt file / プロンプトファイルがありません: /p.txt   train_util.py:6396\n")
    log = parse_text(text)
    assert log.errors == ["ERROR    No prompt file / プロンプトファイルがありません: /p.txt  (train_util.py:6396)"]


def test_crlf_ansi_carriage_returns_and_bad_utf8():
    raw = (b"\x1b[31mTraceback (most recent call last):\x1b[0m\r\n"
           b"  File \"x.py\", line 3, in f\r\n"
           b"steps: 10%|#  | 1/10\rsteps: 20%|## | 2/10\rsteps: 30%|###| 3/10\r\n"
           b"ValueError: caption \xff\xfe not decodable\r\n")
    log = parse_text(raw)
    root = log.root
    assert root.exception == "ValueError"
    assert root.message == "caption \ufffd\ufffd not decodable"
    assert root.frames[0].line == 3
    assert any(line.startswith("steps: 30%") for line in log.tail)
    assert not any("20%" in line for line in log.tail)


def test_progress_runs_collapse_but_keep_the_first_nan():
    bars = "".join(f"steps: {i}%|#| {i}/100 [00:01<00:01, 1.0s/it, avr_loss={'nan' if i > 40 else '0.1'}]\n"
                   for i in range(1, 100))
    log = parse_text(bars + "done\n")
    assert log.lines < 5
    assert any("41/100" in line and "nan" in line for line in log.tail)
    assert any("99/100" in line for line in log.tail)


def test_megabyte_lines_are_capped_and_the_rest_still_parses():
    huge = "x" * (3 << 20)
    text = f"{huge}\nTraceback (most recent call last):\n  File \"a.py\", line 1, in f\nKeyError: 'k'\n"
    log = parse_stream(io.BytesIO(text.encode()))
    assert log.root.exception == "KeyError"
    assert max(len(line) for line in log.tail) <= MAX_LINE
    assert log.truncated_lines >= 1 or log.lines >= 1


def test_endless_carriage_return_line_keeps_its_last_segment():
    data = b"".join(b"\rsteps: %d%%|#| %d/100000" % (i % 100, i) for i in range(100000)) + b"\nKilled\n"
    log = parse_stream(io.BytesIO(data))
    assert log.exit.signal == 9
    assert all(len(line) <= MAX_LINE for line in log.tail)


def test_standalone_exception_lines_and_argparse_errors():
    log = parse_text("AssertionError: bucket_reso_steps is 32. it must be divisible by 64.\n")
    assert log.root.exception == "AssertionError"
    log = parse_text("usage: train_network.py [-h]\ntrain_network.py: error: unrecognized arguments: --foo\n")
    assert log.root.exception == "argparse.ArgumentError"
    assert log.root.message == "unrecognized arguments: --foo"


def test_plain_log_lines_are_not_failures():
    text = ("NOTE: Redirects are currently not supported in Windows or MacOs.\n"
            "steps: 100%|##########| 2/2 [00:03<00:00, avr_loss=1.16]\n"
            "ERROR: this is a message, not an exception\n"
            "Error while doing X is only a sentence\n")
    log = parse_text(text)
    assert log.failures == [] and log.exit is None


def test_interleaved_ranks_keep_their_own_tracebacks():
    text = """\
[rank0]: Traceback (most recent call last):
[rank1]: Traceback (most recent call last):
[rank0]:   File "/sd/a.py", line 1, in f
[rank1]:   File "/sd/b.py", line 2, in g
[rank1]: KeyError: 'b'
[rank0]: ValueError: a
"""
    log = parse_text(text)
    by_rank = {f.rank: f for f in log.failures}
    assert by_rank[0].exception == "ValueError" and by_rank[0].frames[0].file == "/sd/a.py"
    assert by_rank[1].exception == "KeyError" and by_rank[1].frames[0].file == "/sd/b.py"
    assert log.root is by_rank[1]  # the first one to fail


def test_elastic_root_cause_rank_picks_the_root():
    text = """\
[rank0]: RuntimeError: NCCL timeout waiting for rank 1
[rank1]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB.
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
Root Cause (first observed failure):
[1]:
  rank      : 1 (local_rank: 1)
  exitcode  : 1 (pid: 4242)
"""
    log = parse_text(text)
    assert log.root.exception == "torch.OutOfMemoryError"


def test_a_traceback_pasted_with_indentation():
    text = "\n".join("    " + line for line in PLAIN.splitlines()[1:7]) + "\n"
    root = parse_text(text).root
    assert root.exception == "AssertionError" and root.frames[-1].line == 1634


@pytest.mark.parametrize("after", [
    "...\nTraceback (most recent call last):\n  File \"/a.py\", line 1, in f\nRuntimeError: next\n",
    "E1125 10:00:00.000000 139 torch/distributed/elastic/multiprocessing/api.py:874] failed (exitcode: 1)\n",
    "(venv) C:\\sd-scripts>\n",
    "PS C:\\sd-scripts> \n",
    "me@box:~/sd-scripts$ \n",
    "Press any key to continue . . .\n",
    "16:09:20-000 INFO     Training has ended.\n",
    "  File \"/sd/train_network.py\", line 1115, in <module>\n",
])
def test_a_message_ends_where_the_next_thing_starts(after):
    """`KeyError: 'x'` then `...` (a paste's elision), a frame, a glog record, a prompt: not message."""
    root = parse_text("Traceback (most recent call last):\n  File \"/a.py\", line 1, in f\nKeyError: 'x'\n" + after).root
    assert (root.exception, root.message) == ("KeyError", "'x'")


def test_an_exception_line_after_a_message_is_the_next_failure():
    text = ("Traceback (most recent call last):\n  File \"/a.py\", line 1, in f\n"
            "ValueError: bad value\n"
            "subprocess.CalledProcessError: Command '['python', 'train_network.py']' returned non-zero exit status 1.\n")
    log = parse_text(text)
    assert log.root.message == "bad value"
    assert [f.exception_name for f in log.failures] == ["ValueError", "CalledProcessError"]
    assert log.failures[1].is_wrapper and log.exit.code == 1


def test_a_multi_line_message_keeps_its_lines():
    text = ("RuntimeError: Error(s) in loading state_dict for UNet2DConditionModel:\n"
            "\tMissing key(s) in state_dict: \"a\", \"b\".\n"
            "\tsize mismatch for c: copying a param with shape torch.Size([1]).\n")
    root = parse_text(text).root
    assert root.message.count("\n") == 2 and "size mismatch" in root.message


def test_xformers_probing_for_triton_is_a_warning_not_the_root():
    text = """\
A matching Triton is not available, some optimizations will not be enabled
Traceback (most recent call last):
  File "C:\\kohya\\venv\\lib\\site-packages\\xformers\\__init__.py", line 57, in _is_triton_available
    import triton  # noqa
ModuleNotFoundError: No module named 'triton'
steps: 100%|##########| 2/2 [00:03<00:00, avr_loss=0.11]
Traceback (most recent call last):
  File "/sd/library/train_util.py", line 1960, in read_caption
AssertionError: caption file is empty / キャプションファイルが空です: a.txt
"""
    log = parse_text(text)
    assert log.root.exception == "AssertionError" and len(log.failures) == 1
    assert any("triton" in w for w in log.warnings)
    assert parse_text(text.split("steps:")[0]).failures == []


def test_rank_prefixed_rich_records_are_unfolded():
    """torch >= 2.4 prefixes every line of a rank, sd-scripts' folded rich records included."""
    text = ("[rank0]:                     WARNING  ignore directory without repeats /            config_util.py:611\n"
            "[rank0]:                              繰り返し回数のないディレクトリを無視します: output\n"
            "[rank0]: ValueError: x\n")
    seen = []

    class Scanner:
        def scan(self, chunk):
            seen.extend(chunk.split("\n"))

    log = parse_text(text, scanner=Scanner())
    assert seen[0] == ("[rank0]:                     WARNING  ignore directory without repeats / "
                       "繰り返し回数のないディレクトリを無視します: output  (config_util.py:611)")
    assert log.root.rank == 0 and log.root.message == "x"


# -- what a paste does to a log (diagnose/paste.py), on real logs of the corpus ------------------
def _real(case_id: str, name: str = "real-issues-2.dev.jsonl") -> str:
    return corpus_case(name, case_id)["log"]


def _root(text: str):
    root = parse_text(text).root
    return (root.exception, root.message.split("\n", 1)[0], [(f.file, f.line, f.function) for f in root.frames])


def test_markdown_quotes_fences_and_emphasis_are_undone():
    text = _real("bk93-bf16-unsupported")
    want = _root(text)
    assert want[0] == "ValueError" and want[2]
    quoted = "".join(f"> {line}\n" for line in text.splitlines())
    assert _root(quoted) == want
    assert _root("please help\n```python\n" + text + "\n```\n") == want
    line = next(x for x in text.splitlines() if x.startswith("ValueError: bf16"))
    assert _root("**" + line + "**\n")[:2] == want[:2]
    assert _root("`" + line + "`\n")[:2] == want[:2]


def test_front_end_prefixes_before_every_line_are_stripped_for_parsing():
    text = _real("bk3139-no-module-xformers-linux")
    want = _root(text)
    for prefix in ("[2024-05-01 12:00:00] [INFO] ", "14:01:08 | ", "12:45:53-084486 INFO     ", "ERROR:root:"):
        assert _root("".join(prefix + line + "\n" for line in text.splitlines())) == want, prefix


def test_lower_cased_tracebacks_keep_their_structure_and_builtin_types():
    text = _real("bk93-bf16-unsupported").lower()
    exc, message, frames = _root(text)
    assert exc == "ValueError"  # the builtin's name restored
    assert message.startswith("bf16 mixed precision requires") and frames[-1][2] == "__init__"


def test_machine_translated_tracebacks_are_read():
    """A browser's translation: headers, frames (full-width punctuation, typographic quotes), chain lines."""
    text = _real("bk1692-bnb-paths-missing-finetune")
    want = _root(text)
    zh = (text.replace("Traceback (most recent call last):", "回溯（最近一次调用）：")
              .replace("During handling of the above exception, another exception occurred:",
                       "在处理上述异常期间，发生了另一个异常："))
    zh = re.sub(r'File "([^"]*)", line (\d+), in (.*)', r"文件 “\1”，第 \2 行，在 \3", zh)
    assert "回溯" in zh and "文件 “" in zh
    log = parse_text(zh)
    assert _root(zh) == want
    assert log.root.causes and log.root.causes[0].exception == "ModuleNotFoundError"
    fr = re.sub(r'File "([^"]*)", line (\d+), in (.*)', r'Fichier "\1", ligne \2, dans \3', text)
    assert _root(fr) == want


def test_indentation_stripped_and_frames_glued_to_source_lines():
    text = _real("bk429-replaced-train-util-lpw-missing")  # as posted: flat, a frame glued to a source line
    log = parse_text(text)
    assert log.root.exception == "ModuleNotFoundError"
    assert [f.function for f in log.root.frames] == ["<module>", "<module>"]
    flat = "".join(line.strip() + "\n" for line in _real("bk2701-flux-te-cache-with-te-training").splitlines())
    assert _root(flat)[0] == "AssertionError"  # `args.func(args)` & co. at column 0 are not exception lines


def test_a_line_wrapped_inside_a_tensor_shape_is_rejoined():
    text = _real("bk1260-sd2-ckpt-without-v2")
    line = next(x for x in text.splitlines() if "torch.Size([320, 1024])" in x)
    cut = line.index("1024])")
    wrapped = text.replace(line, line[:cut] + "\n" + line[cut:])
    seen = []

    class Scanner:
        def scan(self, chunk):
            seen.extend(chunk.split("\n"))

    parse_text(wrapped, scanner=Scanner())
    assert line.strip() in [x.strip() for x in seen]


def test_a_gui_verdict_after_the_error_is_not_part_of_its_message():
    text = _real("ls513-text-encoder-lr-float-no-len")
    assert text.rstrip().endswith("Training failed / 训练失败")
    assert parse_text(text).root.message == "object of type 'float' has no len()"
    assert parse_text(text.replace("22:02:40-417801 ERROR    ", "")).root.message == "object of type 'float' has no len()"


def test_localized_paging_file_messages_and_hex_statuses_name_the_exit():
    text = _real("bk332-winerror1455-french")
    log = parse_text(text.replace("[WinError 1455] ", ""))  # the French message alone
    assert "paging file" in log.exit.description and "fichier de pagination" in log.noticed["paging_file"]
    zh = text.replace("Le fichier de pagination est insuffisant pour terminer cette opération.", "页面文件太小，无法完成操作。")
    assert "页面文件太小" in parse_text(zh.replace("[WinError 1455] ", "")).noticed["paging_file"]
    assert parse_text("Process finished with exit code 0xC0000005\n").exit.ntstatus == "0xC0000005 access violation"
    status = _real("bk2977-flux-access-violation-ram")
    assert parse_text(status).exit.ntstatus == "0xC0000005 access violation"
    assert parse_text(status.lower()).exit.code == 3221225477
