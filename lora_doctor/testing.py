"""Helpers for plugin authors: run a check against a Context built from a command and facts,
or diagnose a log with their own signatures (`diagnose_log`).

    from lora_doctor.testing import gpu, fake_facts, make_context, run_check

    def test_my_check():
        ctx = make_context("accelerate launch train_network.py --mixed_precision bf16",
                           facts=fake_facts(devices=[gpu("Tesla T4", (7, 5), 15)]))
        findings = run_check(my_plugin, "myplugin.bf16", ctx)
        assert findings[0].severity == Severity.ERROR

Facts follow the documented schema (docs/json.md, `target`); anything left out gets a neutral
default. `run_check` goes through the real runner, so a raising check shows up as the same
error finding users would see.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from lora_doctor.context import Context, build_context
from lora_doctor.model import Check, Finding

GIB = 1024 ** 3


def gpu(name: str = "NVIDIA GeForce RTX 3090", capability=(8, 6), memory_gib: float = 24.0,
        index: int = 0) -> dict:
    """One CUDA device as the probe reports it."""
    return {"index": index, "name": name, "capability": list(capability),
            "memory_bytes": int(memory_gib * GIB), "bf16": tuple(capability) >= (8, 0)}


def fake_facts(*, python: str = "3.10.11", platform: str = "linux", executable: str = "/venv/bin/python",
               torch: str | None = "2.6.0+cu124", cuda: str | None = "12.4", devices=None,
               cuda_available: bool | None = None, arch_list=None, packages: dict | None = None,
               torch_error: str | None = None, venv: bool = True) -> dict:
    """Probe facts for a machine that need not exist here (`devices=None` gives one RTX 3090)."""
    if devices is None:
        devices = [gpu()] if cuda else []
    devices = [dict(d, index=i) for i, d in enumerate(devices)]
    if cuda_available is None:
        cuda_available = bool(cuda) and bool(devices)
    torch_facts: dict = {"imported": torch is not None and torch_error is None, "error": torch_error}
    if torch is not None and torch_error is None:
        torch_facts.update(version=torch, cuda_build=cuda, hip_build=None, cudnn=90100 if cuda else None,
                           cuda_available=cuda_available, mps_available=False,
                           device_count=len(devices) if cuda_available else 0,
                           arch_list=list(arch_list) if arch_list is not None else
                           (["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90"] if cuda else []),
                           devices=devices if cuda_available else [], warnings=[])
    pkgs = {"torch": torch, **(packages or {})}
    prefix = str(Path(executable).parent.parent)
    return {"python": {"executable": executable, "version": python, "implementation": "CPython", "bits": 64,
                       "platform": platform, "machine": "x86_64", "prefix": prefix,
                       "base_prefix": "/usr" if venv else prefix, "venv": venv, "conda": False},
            "packages": pkgs, "torch": torch_facts,
            "probe": {"ok": True, "error": None, "timed_out": False, "seconds": 0.0, "exit_code": 0}}


def make_context(command: str | list[str] | None = None, *, facts: dict | None = None, probe: bool = False,
                 **kwargs) -> Context:
    """A Context for `command` (a string is split like a POSIX shell would); facts default to
    `fake_facts()`, so no probe runs; `probe=True` probes the real interpreter instead (`python=`
    chooses it). Other keywords go to `build_context`."""
    from lora_doctor.launch.command import parse_command

    launch = None
    if command is not None:
        launch = parse_command(shlex.split(command) if isinstance(command, str) else list(command))
    if not probe and facts is None:
        facts = fake_facts()
    return build_context(launch=launch, facts=facts, **kwargs)


def checks_of(plugin) -> list[Check]:
    """The checks a plugin (a module or object with `lora_doctor_register_checks`) registers."""
    from dataclasses import replace

    found: list[Check] = []
    plugin.lora_doctor_register_checks(register=found.append)
    name = getattr(plugin, "__name__", type(plugin).__name__)
    return [c if c.plugin else replace(c, plugin=name) for c in found]


def run_check(check_or_plugin, check_id: str | None = None, ctx: Context | None = None) -> list[Finding]:
    """Run one check through the real runner (isolation, budget) and return its findings.

    Pass a Check, or a plugin plus the id of one of its checks. A check that does not apply to
    `ctx` (e.g. needs a command) returns [].
    """
    from lora_doctor.host.doctor import run_checks

    if isinstance(check_or_plugin, Check):
        check = check_or_plugin
        if ctx is None and isinstance(check_id, Context):
            ctx = check_id
    else:
        checks = {c.id: c for c in checks_of(check_or_plugin)}
        if check_id not in checks:
            raise KeyError(f"no check {check_id!r}; this plugin registers {sorted(checks)}")
        check = checks[check_id]
    result = run_checks([check], ctx if ctx is not None else make_context())[0]
    return list(result.findings)


def diagnose_log(text: str, *, signature_dirs=(), command: str | list[str] | None = None,
                 facts: dict | None = None, exit_code: int | None = None) -> list:
    """Diagnose a log with the builtin database plus the `.toml` signatures in `signature_dirs`;
    returns the ranked `Diagnosis` list (best first), as `lora-doctor diagnose` would."""
    from lora_doctor.launch.command import parse_command
    from lora_doctor.diagnose.match import diagnose_text

    launch = None
    if command is not None:
        launch = parse_command(shlex.split(command) if isinstance(command, str) else list(command))
    report = diagnose_text(text, launch=launch, facts=facts, exit_code=exit_code,
                           plugin_dirs=[str(d) for d in signature_dirs])
    return list(report.diagnoses)
