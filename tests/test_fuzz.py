"""Property tests: whatever bytes a log holds, the parser and the matcher return, quickly."""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lora_doctor.diagnose.logparse import MAX_LINE, parse_text
from lora_doctor.diagnose.match import diagnose_text
from lora_doctor.host.pluginmanager import PluginHost

PIECES = [
    "Traceback (most recent call last):\n", '  File "/sd/train.py", line 12, in train\n', "    x = y()\n",
    "    ^^^^^\n", "ValueError: bad\n", "AssertionError\n", "KeyboardInterrupt\n",
    "During handling of the above exception, another exception occurred:\n\n",
    "The above exception was the direct cause of the following exception:\n\n",
    "╭─── Traceback (most recent call last) ───╮\n", "│ /a/b.py:3 in f                          │\n",
    "│ ❱ 3 │ x()                                 │\n", "╰─────────────────────────────────────────╯\n",
    "[rank0]: ", "[rank1]: Traceback (most recent call last):\n", "Original Traceback (most recent call last):\n",
    "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:\n", "Root Cause (first observed failure):\n",
    "  exitcode  : -9 (pid: 1)\n", "Killed\n", "returned non-zero exit status 3221225477.\n",
    "2026-11-25 08:18:09 INFO     message text                                 train_util.py:99\n",
    "                             continued fragment                                       \n",
    "steps:  50%|█████     | 1/2 [00:01<00:01,  1.96s/it, avr_loss=nan]\r", "\r\n", "\x1b[31m", "\x1b[0m",
    "usage: x\ntrain.py: error: unrecognized arguments: --x\n", "CUDA out of memory. Tried to allocate 2.00 GiB\n",
]

chunks = st.one_of(
    st.sampled_from(PIECES),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
    st.text(max_size=80),
    st.integers(min_value=1, max_value=200_000).map(lambda n: "x" * n),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(chunks, max_size=40))
def test_parser_never_raises_and_bounds_its_output(parts):
    text = "".join(parts)
    start = time.monotonic()
    log = parse_text(text)
    assert time.monotonic() - start < 5
    for f in log.failures:
        assert len(f.message) <= 8192 and all(len(fr.file) <= MAX_LINE for fr in f.frames)
    assert all(len(line) <= MAX_LINE for line in log.tail)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=4000))
def test_random_bytes(data):
    parse_text(data)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=30), st.integers(min_value=0, max_value=2000))
def test_truncated_tracebacks(parts, cut):
    text = "".join(parts)
    parse_text(text[:cut])
    parse_text(text.encode("utf-8")[:cut])


@pytest.fixture(scope="module")
def host():
    return PluginHost([], entry_points=False)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(chunks, max_size=25), st.one_of(st.none(), st.integers(min_value=-2**31, max_value=2**32)))
def test_the_whole_diagnosis_never_raises(host, parts, exit_code):
    report = diagnose_text("".join(parts), exit_code=exit_code, host=host)
    report.to_json()
