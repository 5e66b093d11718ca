"""Builtin plugin: the target Python itself (version range, 64-bit, which venv)."""

from __future__ import annotations

import os

from lora_doctor.hookspecs import hookimpl
from lora_doctor.model import Check, Finding, Severity

# sd-scripts' README: Python 3.10 is the tested version; 3.11/3.12 "will work but not tested";
# the code uses 3.9+ syntax, so anything older fails at import (versions.python_too_old).
TESTED = "3.10"
MINIMUM = (3, 9)
UNTESTED_ABOVE = (3, 12)


def check_python(ctx):
    if not ctx.found_training_python:
        from lora_doctor.target.find import LOOKED_AT

        yield Finding(Severity.WARN, ctx.python_why,
                      detail=f"Looked at {LOOKED_AT}. The checks below ran in lora-doctor's own Python "
                             f"({ctx.python}), which has none of sd-scripts' packages.",
                      fix="Point lora-doctor at the python of the venv that runs sd-scripts (or activate that venv "
                          "first): --python PATH, e.g. kohya_ss/venv/bin/python or venv\\Scripts\\python.exe.",
                      facts={"lora-doctor's own Python": ctx.python})
        return
    facts = ctx.facts.get()
    probe = facts.get("probe", {})
    if not probe.get("ok"):
        yield Finding(Severity.ERROR, f"cannot inspect {ctx.python}: {probe.get('error')}",
                      fix="Point --python at the interpreter that runs training (the sd-scripts venv's python).",
                      facts={"python": ctx.python})
        return
    py = facts["python"]
    from packaging.version import InvalidVersion, Version

    try:
        version = Version(str(py["version"])).release[:2]
    except (KeyError, InvalidVersion):
        yield Finding(Severity.WARN, f"cannot tell the Python version of {ctx.python}", facts=dict(py))
        return
    where = (f"venv {py.get('prefix')}" if py.get("venv") else
             f"conda {py.get('prefix')}" if py.get("conda") else "no venv")
    info = {"executable": py.get("executable"), "prefix": py.get("prefix"), "platform": py.get("platform"),
            "chosen by": ctx.python_why or ctx.python_source}
    if version < MINIMUM:
        yield Finding(Severity.ERROR, f"Python {py['version']} is too old for sd-scripts (needs {TESTED})",
                      fix=f"Create the venv with Python {TESTED}: install it, then recreate sd-scripts' venv.",
                      fix_command=f"py -{TESTED} -m venv venv" if py.get("platform") == "win32" else f"python{TESTED} -m venv venv",
                      cause="versions.python_too_old", facts=info)
    elif version > UNTESTED_ABOVE:
        yield Finding(Severity.WARN, f"Python {py['version']} is newer than sd-scripts supports ({TESTED}; 3.11/3.12 untested)",
                      fix=f"Use Python {TESTED} for the sd-scripts venv if installs fail (wheels for torch/xformers may be missing).",
                      facts=info)
    else:
        yield Finding(Severity.OK, f"Python {py['version']} ({py.get('bits')}-bit, {where})", facts=info)
    if py.get("bits") not in (None, 64):
        yield Finding(Severity.ERROR, f"{py.get('bits')}-bit Python: torch has no 32-bit builds",
                      fix=f"Install 64-bit Python {TESTED} and recreate the venv.", facts=info)
    if not py.get("venv") and not py.get("conda"):
        yield Finding(Severity.INFO, "training would run in the system/global Python, not a virtual environment",
                      detail="Packages installed globally mix with other tools' versions.",
                      fix="Create and activate sd-scripts' venv: python -m venv venv, then activate it.",
                      facts=info)


def _venv_root(python) -> str:
    return os.path.normcase(os.path.abspath(os.path.dirname(os.path.dirname(str(python)))))


def _activate(venv_python, platform) -> str:
    root = os.path.dirname(os.path.dirname(str(venv_python)))
    if platform == "win32":
        return os.path.join(root, "Scripts", "activate")
    return f"source {os.path.join(root, 'bin', 'activate')}"


def check_launcher(ctx):
    """The command's launcher exists, and runs in the sd-scripts venv when there is one."""
    platform = (ctx.facts.get().get("python") or {}).get("platform")
    exe = ctx.launch.argv[0] if ctx.launch and ctx.launch.argv else ""
    venv = ctx.sd_scripts_venv
    if ctx.launcher_found is False:
        yield Finding(Severity.ERROR, f"`{exe}` is not found on PATH",
                      detail="The training command cannot start: the virtual environment that has it is not "
                             "activated (or it was never installed).",
                      fix="Activate sd-scripts' venv in this shell, then run the command again." if venv else
                          "Activate the venv you installed sd-scripts' requirements into (or install them).",
                      fix_command=_activate(venv, platform) if venv else "",
                      cause="install.venv_not_activated", facts={"PATH": ctx.env.get("PATH", "")})
        return
    if ctx.python_source == "command" and venv is not None and _venv_root(ctx.python) != _venv_root(venv):
        yield Finding(Severity.WARN, f"`{exe}` runs in {ctx.python}, not in sd-scripts' venv {venv}",
                      detail="The packages of the other environment are the ones training will import.",
                      fix="Activate sd-scripts' venv before launching.", fix_command=_activate(venv, platform),
                      cause="install.venv_not_activated")
        return
    runs_in = f", runs in {ctx.python}" if ctx.python_source == "command" else ""
    yield Finding(Severity.OK, f"`{exe}` found{runs_in}")


@hookimpl
def lora_doctor_register_checks(register):
    """Python version, bitness and virtual environment of the target interpreter."""
    register(Check(id="python.interpreter", title="Python", run=check_python))
    register(Check(id="python.launcher", title="Launcher", run=check_launcher, applies="command"))
