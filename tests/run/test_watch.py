"""The watch plugin (lora_doctor_watch_line) and the runner's line splitting that feeds it."""

import functools
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lora_doctor.diagnose.notable import PROGRESS_NAN_SPELLINGS, first_nan
from lora_doctor.host.pluginmanager import PluginHost
from lora_doctor.plugins.watch import loss_is_nan, lora_doctor_watch_line
from lora_doctor.run.stream import LineWatcher, LogWriter, redact_bytes, strip_ansi

CTX = SimpleNamespace(options={"train_batch_size": "4", "learning_rate": "1e-3", "mixed_precision": "fp16"})


@pytest.mark.parametrize("line", [
    "steps:  12%|█▏        | 12/100 [00:10<01:20,  1.1it/s, avr_loss=nan]",
    "epoch 1, step 30: loss=NaN",
    "steps: 3/10 [avr_loss=-nan, lr=1e-4]",
])
def test_nan_loss_hint(line):
    hint = lora_doctor_watch_line(line, CTX)
    assert hint.startswith("loss is NaN")
    assert "your --learning_rate 1e-3" in hint and "bf16" in hint
    assert loss_is_nan(line)


@pytest.mark.parametrize("line", [
    "steps:  12%|█▏        | 12/100 [00:10<01:20,  1.1it/s, avr_loss=0.0912]",
    "INFO     nan_check disabled",
    "loss=nano",
])
def test_ordinary_lines_say_nothing(line):
    assert lora_doctor_watch_line(line, CTX) is None
    assert not loss_is_nan(line)


def test_oom_hint_names_this_runs_values():
    line = ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total "
            "capacity of 7.79 GiB of which 1.02 GiB is free.")
    hint = lora_doctor_watch_line(line, CTX)
    assert hint.startswith("CUDA out of memory")
    assert "your --train_batch_size 4 -> 1" in hint
    assert "--gradient_checkpointing" in hint


def test_registered_through_the_plugin_host():
    host = PluginHost(entry_points=False)
    results = dict(host.call_each("lora_doctor_watch_line", line="avr_loss=nan", context=CTX))
    assert results["lora_doctor.plugins.watch"].startswith("loss is NaN")


def test_line_watcher_sees_progress_lines_split_across_reads():
    seen = []
    watcher = LineWatcher(seen.append)
    for chunk in (b"\rsteps: 1 [avr_lo", b"ss=0.1]\rsteps: 2 [\x1b[32mavr_loss=nan\x1b[0m]", b"\r", b"tail"):
        watcher.feed(chunk)
    watcher.flush()
    assert seen == ["steps: 1 [avr_loss=0.1]", "steps: 2 [avr_loss=nan]", "tail"]


def test_line_watcher_floods_offer_the_end_of_each_read():
    seen = []
    watcher = LineWatcher(seen.append)
    block = b"".join(b"ordinary line %d\n" % i for i in range(5000)) + b"RuntimeError: CUDA out of memory\n"
    watcher.feed(block)
    assert seen[-1] == "RuntimeError: CUDA out of memory"
    assert seen[-2] == "ordinary line 4999"
    assert len(seen) < 1000  # bounded work per read
    assert all(line.startswith(("ordinary line ", "RuntimeError")) for line in seen)  # no partial lines


def test_silent_failure_fragment_found_across_reads():
    watcher = LineWatcher(None, fragments=(b"No data found",))
    watcher.feed(b"... No da")
    watcher.feed(b"ta found. Please verify")
    assert watcher.found == b"No data found"


def test_log_writer_redacts_across_reads_and_keeps_other_bytes(tmp_path):
    path = tmp_path / "l.log"
    log = LogWriter(str(path))
    for chunk in (b"a\xff\x00b --hf_token hf_abcd", b"efghijkl ok\r", b"progress\rtoken=", b"hf_zzzzzzzzz"):
        log.write(chunk)
    log.close()
    assert path.read_bytes() == b"a\xff\x00b --hf_token [REDACTED] ok\rprogress\rtoken=hf_[REDACTED]"


def test_strip_ansi():
    assert strip_ansi("\x1b[2K\x1b[1;31mError\x1b[0m \x1b]0;title\x07done") == "Error done"


SECRET_STREAM = (b"step 1\n" + b"y" * 70_000 + b" --wandb_api_key 0123456789abcdef then hf_SECRETSECRET12 "
                 + b"z" * 66_000 + b"\rtoken hf_ANOTHERSECRET99\n" + b"w" * 65_530 + b" --hf_token=hf_THIRDSECRET77 end")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(SECRET_STREAM) - 1), max_size=12))
def test_log_redaction_holds_whatever_the_chunking(tmp_path_factory, cuts):
    """Secrets in lines far longer than MAX_LINE (forced cuts) and across any read boundary."""
    path = tmp_path_factory.mktemp("log") / "l.log"
    log = LogWriter(str(path))
    bounds = [0, *sorted(set(cuts)), len(SECRET_STREAM)]
    for a, b in zip(bounds, bounds[1:]):
        log.write(SECRET_STREAM[a:b])
    log.close()
    text = path.read_bytes()
    for secret in (b"0123456789abcdef", b"SECRETSECRET12", b"ANOTHERSECRET99", b"THIRDSECRET77"):
        assert secret not in text
    assert text == redact_bytes(SECRET_STREAM)  # as if it had come in one piece: nothing else changed


# -- one vocabulary: what the watcher stops on, the post-mortem names -------------------------
# Lines as sd-scripts (train_network.py: `progress_bar.set_postfix(avr_loss=…)`), its older
# scripts, other trainers and C's printf (`-nan`) print them; the first is the p1_lr_too_high_nan
# run of tests/data/corpus/sdscripts-runs.dev.jsonl.
NAN_FORMS = [
    "steps:  33%|███▎      | 2/6 [00:03<00:07,  1.77s/it, avr_loss=nan] ",
    "steps:  12%|█▏        | 12/100 [00:10<01:20,  1.1it/s, avr_loss=nan]",
    "epoch 1, step 30: loss=NaN",
    "steps: 3/10 [avr_loss=-nan, lr=1e-4]",
    "current_loss=nan average_loss=nan",
    "epoch 2/10 average_loss: NaN",
    "2024-05-01 12:00:00 INFO     step 40: loss = nan                                 train_network.py:1200",
    "[rank0]: steps:  50%|█████     | 3/6 [00:05<00:05,  1.71s/it, avr_loss=nan]",
    "Loss: nan",
    "step 40 LOSS = NAN",
    "epoch 3: loss: Nan",
]


@functools.lru_cache(maxsize=1)
def _host():
    return PluginHost(entry_points=False)


def _post_mortem_names_nan(log: str) -> bool:
    from lora_doctor.diagnose.match import diagnose_text

    report = diagnose_text(log, host=_host())
    return any(d.signature_id == "train.loss_nan" for d in report.diagnoses)


@pytest.mark.parametrize("line", NAN_FORMS)
def test_every_nan_line_the_watcher_stops_on_is_named_by_the_post_mortem(line):
    assert loss_is_nan(line)  # run --stop-on-nan stops here ...
    before = "steps:  17%|█▋        | 1/6 [00:01<00:09,  1.90s/it, avr_loss=0.131]"
    after = "steps: 100%|██████████| 6/6 [00:09<00:00,  1.64s/it, avr_loss=0.129]"
    logs = [line + "\n", f"{before}\n{line}\n{after}\n"]  # alone; in a run of progress lines that collapses
    if first_nan(line, spellings=PROGRESS_NAN_SPELLINGS) >= 0:  # how progress bars spell it (notable.py)
        logs += [f"{before}\r{line}\r{after}\n",  # a terminal's \r updates: only the last segment is printed
                 f"{before}\r\x1b[32m{line}\x1b[0m\r{after}\r\n"]  # with colours and CRLF
    for log in logs:
        assert _post_mortem_names_nan(log), log  # ... and the post-mortem names it


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["", "avr_", "avg_", "average_", "current_", "train_", "step_", "epoch_"]),
       st.sampled_from(["loss", "Loss", "LOSS"]), st.sampled_from(["=", ": ", " = ", ":"]),
       st.sampled_from(["nan", "NaN", "NAN", "-nan", "Nan"]),
       st.sampled_from(["steps: 3/10 [", "epoch 1, ", "", "\u2588\u2588 | 4/6 [00:06<00:03, "]),
       st.sampled_from(["]", ", lr=1e-4]", "", " "]))
def test_watch_and_post_mortem_agree_on_nan_forms(prefix, word, sep, nan, head, tail):
    line = f"{head}{prefix}{word}{sep}{nan}{tail}"
    if loss_is_nan(line):
        sep = "\r" if first_nan(line, spellings=PROGRESS_NAN_SPELLINGS) >= 0 else "\n"
        assert _post_mortem_names_nan(f"steps: 1/6 [avr_loss=0.2]{sep}{line}{sep}steps: 6/6 [avr_loss=0.1]\n"), line


def test_the_watcher_and_the_parser_share_the_vocabulary():
    from lora_doctor.diagnose import notable
    from lora_doctor.plugins import watch

    assert watch.loss_is_nan is notable.loss_is_nan
    assert watch.NAN_LOSS_RE is notable.LOSS_NAN_RE
    assert notable.NOTABLE["loss_nan"] == notable.LOSS_NAN_RE.pattern
