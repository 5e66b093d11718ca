"""The probe gives the target interpreter 60 s (docs/env.md: "with a timeout (60 s)") when no
timeout is given: `lora-doctor env` on a machine where `import torch` hangs (a dead network drive, a
driver stuck in D-state) answers after a minute, not ten. A real hanging interpreter, without the
60 s wait: the probe's call to its bounded subprocess runner is recorded, and the wait is cut at a
few seconds, as the runner cuts it at 60 (the real cut at a short timeout is tested in test_probe.py)."""

from __future__ import annotations

import json
import re
import stat
import sys

import pytest

from support import ROOT
from lora_doctor import cli, subproc
from lora_doctor.target import probe

DOCUMENTED = 60
CAP = 4.0  # seconds a hang really lasts here: the interpreter's own facts come back first


def hanging_python(tmp_path) -> str:
    """This venv's python with a `torch` whose import never returns."""
    folder = tmp_path / "hangs"
    (folder / "torch").mkdir(parents=True)
    (folder / "torch" / "__init__.py").write_text("import time\ntime.sleep(600)\n")
    exe = folder / "python"
    exe.write_text(f'#!/bin/sh\nPYTHONPATH="{folder}" exec "{sys.executable}" "$@"\n')
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return str(exe)


@pytest.fixture
def timeouts(monkeypatch):
    """The timeout of every probe subprocess, in order; each real wait cut at CAP seconds."""
    seen: list[float] = []
    real = subproc.run_bounded

    def recording(argv, timeout, **kwargs):
        seen.append(timeout)
        return real(argv, min(timeout, CAP), **kwargs)

    monkeypatch.setattr(probe, "run_bounded", recording)
    return seen


def test_a_probe_without_a_timeout_waits_the_documented_60_s_and_says_so(tmp_path, timeouts):
    facts = probe.run_probe(hanging_python(tmp_path))
    assert timeouts == [DOCUMENTED]
    assert facts["probe"]["ok"] is True and facts["probe"]["timed_out"] is True
    assert facts["torch"]["error"] == f"import torch did not finish within {DOCUMENTED} s"


def test_env_without_probe_timeout_reports_a_hang_after_60_s(tmp_path, timeouts, capsys, monkeypatch):
    monkeypatch.delenv("LORA_DOCTOR_PLUGIN_PATH", raising=False)
    py = hanging_python(tmp_path)
    code = cli.main(["env", "--json", "--offline", "--python", py, "--only", "python", "gpu"])
    data = json.loads(capsys.readouterr().out)
    assert timeouts == [DOCUMENTED]
    gpu = next(c for c in data["checks"] if c["id"] == "gpu.cuda")
    assert gpu["status"] == "error" and code == 1
    assert gpu["findings"][0]["summary"] == f"import torch hangs in {py}: import torch did not finish within 60 s"


def test_the_docs_state_the_timeout_the_probe_uses():
    text = (ROOT / "docs" / "env.md").read_text("utf-8")
    stated = re.findall(r"with a timeout \((\d+) s\)", text) + re.findall(r"up to its (\d+) s timeout", text)
    assert len(stated) == 2, stated
    assert {int(n) for n in stated} == {DOCUMENTED} == {probe.DEFAULT_TIMEOUT}
