"""The watch plugin (lora_doctor_watch_line) and the runner's line splitting that feeds it."""

from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
