"""Builtin plugin: the target Python itself (version range, 64-bit, which venv)."""

from __future__ import annotations

from lora_doctor.hookspecs import hookimpl
from lora_doctor.model import Check, Finding, Severity

# sd-scripts' README: Python 3.10 is the tested version; 3.11/3.12 "will work but not tested";
# the code uses 3.9+ syntax, so anything older fails at import (versions.python_too_old).
TESTED = (3, 10)
MINIMUM = (3, 9)
UNTESTED_ABOVE = (3, 12)


def check_python(ctx):
    facts = ctx.facts.get()
    probe = facts.get("probe", {})
    if not probe.get("ok"):
        yield Finding(Severity.ERROR, f"cannot inspect {ctx.python}: {probe.get('error')}",
                      fix="Point --python at the interpreter that runs training (the sd-scripts venv's python).",
                      facts={"python": ctx.python})
        return
    py = facts["python"]
    version = tuple(int(x) for x in py["version"].split(".")[:2])
    where = f"venv {py['prefix']}" if py.get("venv") else ("conda " + py["prefix"] if py.get("conda") else "no venv")
    info = {"executable": py["executable"], "prefix": py["prefix"], "platform": py.get("platform"),
            "chosen by": ctx.python_source}
    if version < MINIMUM:
        yield Finding(Severity.ERROR, f"Python {py['version']} is too old for sd-scripts (needs 3.10)",
                      fix="Create the venv with Python 3.10: install it, then recreate sd-scripts' venv.",
                      fix_command="py -3.10 -m venv venv" if py.get("platform") == "win32" else "python3.10 -m venv venv",
                      cause="versions.python_too_old", facts=info)
    elif version > UNTESTED_ABOVE:
        yield Finding(Severity.WARN, f"Python {py['version']} is newer than sd-scripts supports (3.10; 3.11/3.12 untested)",
                      fix="Use Python 3.10 for the sd-scripts venv if installs fail (wheels for torch/xformers may be missing).",
                      facts=info)
    else:
        yield Finding(Severity.OK, f"Python {py['version']} ({py.get('bits')}-bit, {where})", facts=info)
    if py.get("bits") != 64:
        yield Finding(Severity.ERROR, f"{py.get('bits')}-bit Python: torch has no 32-bit builds",
                      fix="Install 64-bit Python 3.10 and recreate the venv.", facts=info)
    if not py.get("venv") and not py.get("conda"):
        yield Finding(Severity.INFO, "training would run in the system/global Python, not a virtual environment",
                      detail="Packages installed globally mix with other tools' versions.",
                      fix="Create and activate sd-scripts' venv: python -m venv venv, then activate it.",
                      facts=info)


@hookimpl
def lora_doctor_register_checks(register):
    """Python version, bitness and virtual environment of the target interpreter."""
    register(Check(id="python.interpreter", title="Python", run=check_python))
