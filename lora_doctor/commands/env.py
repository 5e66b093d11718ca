"""`lora-doctor env [-- COMMAND]`: check the machine (and a training command) before launch."""

from __future__ import annotations

from lora_doctor.commands.common import add_check_options, parse_launch, run_all_checks


def add_parser(sub) -> None:
    p = sub.add_parser("env", help="check this machine (and a training command after --) before training",
                       description="Run every check against the Python that will train (--python, else the "
                                   "command's, the activated venv's, or the venv beside sd-scripts). With "
                                   "`-- accelerate launch train_network.py …` the checks use that command's "
                                   "values without launching it. Exit code: 0 no errors, 1 errors, 2 usage.")
    add_check_options(p)
    p.set_defaults(handler=run, accepts_command=True)


def report_json(ctx, results, summary) -> dict:
    from lora_doctor import __version__

    facts = ctx.facts.get()
    return {
        "version": __version__,
        "target": {**facts, "interpreter": ctx.python, "chosen_by": ctx.python_source, "why": ctx.python_why,
                   "sd_scripts": str(ctx.sd_scripts_dir) if ctx.sd_scripts_dir else None},
        "command": None if ctx.launch is None else {"launcher": ctx.launch.launcher, "script": ctx.launch.script},
        "checks": [r.to_json() for r in results],
        "summary": summary,
    }


def target_line(ctx) -> str:
    """The first line: which interpreter is checked and why, or that none was found."""
    if not ctx.found_training_python:
        return f"lora-doctor: {ctx.python_why}"
    return f"lora-doctor: checking {ctx.python} ({ctx.python_why})"


def _warm_renderer() -> None:
    import rich.console  # noqa: F401  (imported while the probe is still importing torch)


def run(args) -> int:
    from lora_doctor.output.render import print_json, render_results

    launch = parse_launch(args.command)
    ctx, results, summary, _ = run_all_checks(args, launch, prepare=None if args.json else _warm_renderer)
    if args.json:
        print_json(report_json(ctx, results, summary))
    else:
        render_results(results, summary, verbose=args.verbose, header=target_line(ctx), brief=True, wrap=True)
    return 1 if summary["errors"] else 0
