"""`lora-doctor dataset DIR [sd-scripts options]`: the dataset checks without a training command.

Takes the dataset options of sd-scripts under their own names (`--resolution 512` or
`--resolution=512`), builds the same Context a training command would, and runs the `dataset`
checks. Exit code: 0 no errors, 1 errors, 2 usage.
"""

from __future__ import annotations

import sys

# sd-scripts option -> argparse type (None: a flag)
VALUE_OPTIONS = {
    "resolution": str, "min_bucket_reso": int, "max_bucket_reso": int, "bucket_reso_steps": int,
    "caption_extension": str, "caption_separator": str, "train_batch_size": int, "max_train_steps": int,
    "max_train_epochs": int, "save_every_n_steps": int, "save_every_n_epochs": int, "save_last_n_steps": int,
    "save_last_n_epochs": int, "save_last_n_steps_state": int, "save_last_n_epochs_state": int,
    "output_dir": str, "reg_data_dir": str, "dataset_config": str, "max_token_length": int,
    "gradient_accumulation_steps": int, "network_dim": int, "save_precision": str, "optimizer_type": str,
    "in_json": str, "dataset_repeats": int,
}
FLAG_OPTIONS = ("enable_bucket", "bucket_no_upscale", "random_crop", "save_state", "save_state_on_train_end",
                "cache_latents", "cache_latents_to_disk", "alpha_mask", "enable_wildcard")


def add_parser(sub) -> None:
    p = sub.add_parser(
        "dataset", help="check a training dataset folder (or --dataset_config TOML) before training",
        description="Read a dataset the way sd-scripts will and report what would go wrong: folder names, "
                    "images, buckets, captions, steps and disk. Takes sd-scripts' own dataset options "
                    "(--resolution 512 or --resolution=512). Reads only. Exit code: 0 no errors, 1 errors, 2 usage.")
    p.add_argument("dir", nargs="?", metavar="DIR", help="the --train_data_dir (the parent of the <repeats>_<name> folders)")
    group = p.add_argument_group("sd-scripts options (same meaning as in train_network.py)")
    for name, kind in VALUE_OPTIONS.items():
        group.add_argument(f"--{name}", type=kind, metavar=name.upper().split("_")[-1])
    for name in FLAG_OPTIONS:
        group.add_argument(f"--{name}", action="store_true")
    p.add_argument("--script", default="train_network.py", metavar="NAME",
                   help="the training script the dataset is for (sets the bucket step rule; default train_network.py, "
                        "sdxl_train_network.py for SDXL)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("-v", "--verbose", action="store_true", help="show the facts behind each line")
    from .common import add_plugin_dir

    add_plugin_dir(p)
    p.set_defaults(handler=run)


def options_from_args(args) -> dict[str, object]:
    """The sd-scripts options given, as the training command would carry them (strings, True for flags)."""
    options: dict[str, object] = {}
    if args.dir:
        options["train_data_dir"] = args.dir
    for name in VALUE_OPTIONS:
        value = getattr(args, name)
        if value is not None:
            options[name] = str(value)
    for name in FLAG_OPTIONS:
        if getattr(args, name):
            options[name] = True
    return options


def standalone_launch(args, options):
    """A Launch standing for this invocation, so fixes can show the corrected `lora-doctor dataset` line."""
    from ..command import Launch
    from ..dataset_scan import STANDALONE

    argv = ["lora-doctor", "dataset"] + ([args.dir] if args.dir else [])
    argv += [f"--{k}" if v is True else f"--{k}={v}" for k, v in options.items() if k != "train_data_dir"]
    if args.script != "train_network.py":
        argv.append(f"--script={args.script}")
    return Launch(argv, STANDALONE, args.script, options=dict(options))


def run(args) -> int:
    from ..cli import UsageError
    from ..context import build_context
    from ..doctor import plugin_error_results, run_checks, select, summary
    from ..pluginmanager import PluginHost
    from ..render import render_results

    options = options_from_args(args)
    if not options.get("train_data_dir") and not options.get("dataset_config"):
        raise UsageError("give the dataset folder (lora-doctor dataset DIR) or --dataset_config FILE")
    launch = standalone_launch(args, options)
    no_probe = {"probe": {"ok": False, "error": "not probed: `lora-doctor dataset` checks files only"}}
    ctx = build_context(launch=launch, options=options, verbose=args.verbose, offline=True, facts=no_probe)
    host = PluginHost(args.plugin_dir)
    checks, errors = host.checks()
    broken = [(p.name, p.error) for p in host.plugins if p.error] + errors
    results = plugin_error_results(broken) + run_checks(select(checks, ["dataset"]), ctx)
    total = summary(results)
    if args.json:
        import json

        from .. import __version__
        from ..redact import redact_text

        report = {"version": __version__, "dataset": options.get("train_data_dir") or options.get("dataset_config"),
                  "options": options, "checks": [r.to_json() for r in results], "summary": total}
        sys.stdout.write(redact_text(json.dumps(report, indent=2, ensure_ascii=False, default=str)) + "\n")
    else:
        what = options.get("dataset_config") or options.get("train_data_dir")
        render_results(results, total, verbose=args.verbose, header=f"lora-doctor dataset: {what}")
    return 1 if total["errors"] else 0
