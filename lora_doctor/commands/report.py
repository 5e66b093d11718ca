"""`lora-doctor report [--log LOG | --last] [-- COMMAND]`: one Markdown block to paste into a GitHub
issue, Discord or Reddit — versions, GPU and driver, the training command, the verdicts of the
checks and the diagnosis of a log — with every secret masked.

It runs the same checks as `lora-doctor env` (commands/common.run_all_checks) and the same
post-mortem as `lora-doctor diagnose` (diagnose/match.diagnose_file). The block stays under
MAX_LINES lines: a maintainer reads it without scrolling, and what it leaves out is named.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

from lora_doctor.errors import UsageError

MAX_LINES = 60
KEY_PACKAGES = ("transformers", "diffusers", "accelerate", "huggingface_hub", "safetensors", "xformers",
                "bitsandbytes", "torchvision", "numpy", "tokenizers", "lycoris-lora", "prodigyopt")
MARK = {"error": "✗", "warning": "!", "timeout": "!", "skipped": "–", "ok": "✓"}
GIB = 1 << 30


def add_parser(sub) -> None:
    from lora_doctor.commands.common import add_check_options

    p = sub.add_parser(
        "report", help="a redacted Markdown summary (versions, GPU, command, verdicts, diagnosis) to paste into "
                       "an issue or a chat",
        description="Run the checks of `lora-doctor env` (for the training command after --, if given) and, with "
                    "--log or --last, the post-mortem of `lora-doctor diagnose`; print one Markdown block under "
                    f"{MAX_LINES} lines with tokens and secret options masked, ready to paste. "
                    "Exit code: 0, or 2 for a usage error.")
    add_check_options(p)
    p.add_argument("--log", metavar="LOG", help="also diagnose this training log")
    p.add_argument("--last", action="store_true",
                   help="the command and log of the last `lora-doctor run` (from the history)")
    p.set_defaults(handler=run, accepts_command=True)


def _last_run(args):
    """(argv, log path or None) of the most recent recorded run; a usage error when there is none."""
    from lora_doctor.history import store as history

    store = history.open_store(create=False)
    run_id = store.latest_id() if store is not None else None
    run = store.get(run_id) if run_id is not None else None
    if store is not None:
        store.close()
    if run is None:
        raise UsageError("--last: no run recorded yet (`lora-doctor run -- …` records one); give --log LOG "
                         "and the command after -- instead")
    log = run.get("log_path")
    return list(run.get("argv") or []), (log if log and os.path.isfile(log) else None), run


def run(args) -> int:
    from lora_doctor.commands.common import parse_launch, run_all_checks

    command, log, last = args.command, args.log, None
    if args.last:
        if log:
            raise UsageError("give --last or --log, not both")
        argv, log, last = _last_run(args)
        command = command or argv or None
        if last.get("cwd") and os.path.isdir(last["cwd"]):
            os.chdir(last["cwd"])  # its relative paths are the run's
    if log is not None:
        if not os.path.isfile(log):
            raise UsageError(f"--log {log}: no such file (give the training log)")
    launch = parse_launch(command)
    ctx, results, summary, host = run_all_checks(args, launch)
    diagnosis = None
    if log is not None:
        from lora_doctor.diagnose.match import diagnose_file

        try:
            diagnosis = diagnose_file(log, launch=launch, facts=ctx.facts.get(), host=host)
        except OSError as exc:
            raise UsageError(f"--log {log}: cannot read it ({exc.strerror or exc})") from None
    text = build_report(ctx, results, summary, diagnosis=diagnosis, log_name=Path(log).name if log else None,
                        last_run=last, gpu_driver=_driver())
    if args.json:
        from lora_doctor.output.render import print_json

        print_json({"markdown": text, "lines": text.count("\n") + 1})
    else:
        from lora_doctor.output.textout import degrade_unencodable

        degrade_unencodable(sys.stdout)
        sys.stdout.write(text + "\n")
    return 0


def _driver() -> dict:
    from lora_doctor.target import nvsmi

    try:
        return nvsmi.query()
    except Exception:  # a report never fails for a missing tool
        return {}


# -- the Markdown --------------------------------------------------------------------------------

def _home(text: str) -> str:
    """The user's home folder as ~ (names people would rather not paste)."""
    home = str(Path.home())
    return text.replace(home, "~") if len(home) > 3 else text


def _versions(ctx, gpu_driver: dict) -> list[str]:
    from lora_doctor import __version__
    from lora_doctor.launch.script_options import checkout_version

    facts = ctx.facts.get() or {}
    py = facts.get("python") or {}
    torch = facts.get("torch") or {}
    packages = facts.get("packages") or {}
    lines = [f"- lora-doctor {__version__} · {platform.system()} {platform.release()} ({platform.machine()})"]
    kind = "venv" if py.get("venv") else "conda" if py.get("conda") else "system"
    why = getattr(ctx, "python_why", "") or ctx.python_source
    if py.get("version"):
        lines.append(f"- Python {py['version']} ({kind}) `{ctx.python}` — {why}")
    else:
        probe = facts.get("probe") or {}
        lines.append(f"- Python `{ctx.python}`: not probed ({probe.get('error') or 'no answer'})")
    if torch.get("version"):
        cuda = torch.get("cuda_build")
        parts = [f"torch {torch['version']}", f"CUDA {cuda}" if cuda else "CPU-only build"]
        if torch.get("cudnn"):
            parts.append(f"cuDNN {torch['cudnn']}")
        parts.append("CUDA available" if torch.get("cuda_available") else "CUDA not available")
        lines.append("- " + " · ".join(parts))
    elif torch.get("error") or packages.get("torch") is None:
        lines.append(f"- torch: {torch.get('error') or 'not installed'}")
    gpus = [f"{d.get('name')} ({d.get('memory_bytes', 0) / GIB:.0f} GiB, sm_{''.join(map(str, d.get('capability') or []))})"
            for d in torch.get("devices") or []]
    if not gpus:
        gpus = [f"{g.get('name')} ({g.get('memory_mib', 0) / 1024:.0f} GiB)" for g in gpu_driver.get("gpus") or []]
    driver = gpu_driver.get("driver_version")
    gpu = ", ".join(gpus) if gpus else "none seen by torch or nvidia-smi"
    lines.append(f"- GPU: {gpu}" + (f" · driver {driver} (CUDA {gpu_driver.get('cuda_version')})" if driver else ""))
    if ctx.sd_scripts_dir is not None:
        v = checkout_version(ctx.sd_scripts_dir)
        where = v.get("tag") or (v.get("commit", "")[:10] or "no git")
        extra = ", ".join(x for x in (v.get("commit", "")[:10] if v.get("tag") else "",
                                      f"branch {v['branch']}" if v.get("branch") else "") if x)
        lines.append(f"- sd-scripts {where}" + (f" ({extra})" if extra else "") + f" at `{ctx.sd_scripts_dir}`")
    else:
        lines.append("- sd-scripts: checkout not found (--sd-scripts DIR)")
    shown = [f"{name} {packages[name]}" for name in KEY_PACKAGES if packages.get(name)]
    missing = [name for name in ("transformers", "diffusers", "accelerate") if name in packages and not packages[name]]
    lines.append("- " + " · ".join(shown + [f"{name} missing" for name in missing]) if shown or missing else
                 "- packages: not known (the probe did not answer)")
    return lines


def _verdicts(results, summary: dict, limit: int) -> list[str]:
    problems = [r for r in results if r.status in ("error", "warning", "timeout")]
    ok = sum(1 for r in results if r.status == "ok")
    skipped = [r for r in results if r.status == "skipped"]
    head = f"**Checks**: {summary['errors']} error{'s' * (summary['errors'] != 1)}, {summary['warnings']} " \
           f"warning{'s' * (summary['warnings'] != 1)}; {ok} ok" + (f", {len(skipped)} skipped" if skipped else "")
    lines = [head]
    for r in problems[:limit]:
        worst = sorted(r.findings, key=lambda f: -int(f.severity))
        bad = [f for f in worst if int(f.severity) >= 2]
        first = bad[0] if bad else (worst[0] if worst else None)
        text = first.summary if first else r.status
        more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
        cause = f" `{first.cause}`" if first is not None and first.cause else ""
        lines.append(f"- {MARK.get(r.status, '?')} {r.check.title}: {_short(text, 160)}{more}{cause}")
    if len(problems) > limit:
        lines.append(f"- … and {len(problems) - limit} more (run `lora-doctor env` for all)")
    reasons: dict[str, list[str]] = {}
    for r in skipped:
        reasons.setdefault(r.skipped_reason, []).append(r.check.title)
    for reason, titles in list(reasons.items())[:3]:
        lines.append(f"- – {', '.join(titles)}: skipped ({_short(reason, 120)})")
    return lines


def _short(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n - 1] + "…"


def _diagnosis(report, log_name: str) -> list[str]:
    lines = [f"**Diagnosis of {log_name}**"]
    if not report.diagnoses:
        root = report.root
        if root is not None:
            lines.append(f"- no known cause; the failure: `{_short(f'{root.exception}: {root.message}', 200)}`")
        elif report.failed and report.exit is not None:
            lines.append(f"- no known cause; the process ended: {report.exit.description or report.exit.code}")
        else:
            lines.append("- the log shows no failure")
        return lines
    best = report.diagnoses[0]
    lines.append(f"- **{best.title}** (`{best.signature_id}`, confidence {best.confidence:.0%})")
    for line in best.evidence[:2]:
        lines.append(f"  > `{_short(line, 200)}`")
    if best.why:
        lines.append(f"- Why: {_short(best.why, 300)}")
    for step in best.fix[:3]:
        lines.append(f"- Fix: {_short(step, 220)}")
    others = [f"`{d.signature_id}`" for d in report.diagnoses[1:4]]
    if others:
        lines.append(f"- Other candidates: {', '.join(others)}")
    return lines


def _secret_values(ctx) -> list[str]:
    """The values of the command's secret options, to mask wherever they appear."""
    from lora_doctor.redact import is_secret_option

    launch = ctx.launch
    values = []
    for name, value in (getattr(launch, "options", None) or {}).items():
        if is_secret_option(name):
            values += [v for v in (value if isinstance(value, list) else [value]) if isinstance(v, str) and len(v) >= 4]
    return values


def build_report(ctx, results, summary: dict, *, diagnosis=None, log_name: str | None = None, last_run=None,
                 gpu_driver: dict | None = None) -> str:
    """The Markdown block: under MAX_LINES lines, every token and secret option masked."""
    from lora_doctor.launch.edit import join
    from lora_doctor.redact import REDACTED, redact_argv, redact_text

    out = ["### lora-doctor report", ""]
    if diagnosis is not None:
        out += _diagnosis(diagnosis, log_name or "the log") + [""]
    out += ["**Environment**"] + _versions(ctx, gpu_driver or {}) + [""]
    if ctx.launch is not None:
        where = f" (the last run, {last_run.get('outcome')}, in `{last_run.get('cwd')}`)" if last_run else ""
        out += [f"**Command**{where}", "```", join(redact_argv(list(ctx.launch.argv))), "```", ""]
    room = MAX_LINES - 1 - len(out) - 2  # the footer's 2 lines; the block stays under MAX_LINES
    out += _verdicts(results, summary, max(1, room - 5))  # head, "… more", up to 3 skipped lines
    out += ["", "<sub>made by `lora-doctor report`: tokens and secret options are masked</sub>"]
    text = "\n".join(out)
    for value in _secret_values(ctx):
        text = text.replace(value, REDACTED)
    return _home(redact_text(text))
