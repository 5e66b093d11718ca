"""`lora-doctor run` exits with the child's code even when explaining the failure crashes
(docs/run.md, exit codes: "the child's … also when anything after it fails"). The crash comes from a
hostile plugin, loaded from --plugin-dir or LORA_DOCTOR_PLUGIN_PATH as a user would: its diagnose hook
is a generator that raises an exception which cannot even be printed, so the post-mortem's own
error handling (which prints the exception) fails too. Real subprocesses throughout."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from support.run_helpers import child, child_env, wrapper_argv

HOSTILE = """
    from lora_doctor import hookimpl


    class Unprintable(Exception):
        def __str__(self):
            raise RuntimeError("this exception cannot be printed")


    @hookimpl
    def lora_doctor_diagnose(failure, postmortem):
        raise Unprintable()
        yield  # a generator: it raises while the diagnosis reads its results
    """

FAILS = "import sys\nprint('epoch 1/10', flush=True)\nprint('giving up', file=sys.stderr, flush=True)\nsys.exit(3)\n"


@pytest.fixture
def hostile(tmp_path):
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "unprintable_diagnose.py").write_text(textwrap.dedent(HOSTILE), encoding="utf-8")
    return folder


def run_both(command, argv, env, extra_env=None):
    """The child on its own, then through `lora-doctor run`: (direct, wrapped) CompletedProcess."""
    direct = subprocess.run(command, capture_output=True, env=child_env(env), timeout=60)
    wrapped = subprocess.run(argv, capture_output=True, env=dict(env, **(extra_env or {})), timeout=120)
    return direct, wrapped


@pytest.mark.parametrize("given", ["--plugin-dir", "LORA_DOCTOR_PLUGIN_PATH"])
def test_a_crash_while_explaining_keeps_the_childs_exit_code(tmp_path, isolated_env, hostile, given):
    script = tmp_path / "train.py"
    script.write_text(FAILS)
    log = tmp_path / "train.log"
    command = [sys.executable, str(script)]
    extra = ("--plugin-dir", str(hostile)) if given == "--plugin-dir" else ()
    env_extra = {"LORA_DOCTOR_PLUGIN_PATH": str(hostile)} if given != "--plugin-dir" else None
    direct, wrapped = run_both(command, wrapper_argv(command, *extra, log=log), isolated_env, env_extra)
    assert direct.returncode == 3
    assert wrapped.returncode == 3, wrapped.stderr.decode(errors="replace")
    assert wrapped.stdout == direct.stdout == b"epoch 1/10\n"
    err = wrapped.stderr.decode("utf-8", "replace")
    assert "giving up\n" in err
    assert f"lora-doctor: the diagnosis failed (Unprintable); read the log: {log}\n" in err
    report = log.with_suffix(".report.json")
    assert f"lora-doctor: exit code 3; log: {log}; report: {report}\n" in err  # the other steps still ran
    assert json.loads(report.read_text("utf-8"))["diagnosis"] is None
    assert "Traceback" not in err  # one warning line, not lora-doctor's own traceback
    assert sorted(log.read_bytes().splitlines()) == [b"epoch 1/10", b"giving up"]  # two pipes, one log


def test_a_child_killed_by_a_signal_keeps_128_plus_n_when_explaining_crashes(tmp_path, isolated_env, hostile):
    log = tmp_path / "segv.log"
    command = [sys.executable, child("die.py"), "SIGSEGV"]
    direct, wrapped = run_both(command, wrapper_argv(command, "--plugin-dir", str(hostile), log=log), isolated_env)
    assert direct.returncode == -11  # what the shell shows as 139
    assert wrapped.returncode == 128 + 11, wrapped.stderr.decode(errors="replace")
    assert wrapped.stdout == direct.stdout == b"about to die\n"
    err = wrapped.stderr.decode("utf-8", "replace")
    assert "lora-doctor: the diagnosis failed (Unprintable); read the log:" in err
    assert "Traceback" not in err
