"""`lora-doctor dataset DIR [sd-scripts options]`: the dataset checks without a training command.

Takes the dataset options of sd-scripts under their own names (`--resolution 512` or
`--resolution=512`), builds the same Context a training command would, and runs the `dataset`
checks. Exit code: 0 no errors, 1 errors, 2 usage.
"""

from __future__ import annotations

import os
from pathlib import Path

# sd-scripts option -> argparse type (int) or metavar (a string value)
VALUE_OPTIONS = {
    "resolution": "W[,H]", "min_bucket_reso": int, "max_bucket_reso": int, "bucket_reso_steps": int,
    "caption_extension": "EXT", "caption_separator": "SEP", "train_batch_size": int, "max_train_steps": int,
    "max_train_epochs": int, "save_every_n_steps": int, "save_every_n_epochs": int, "save_last_n_steps": int,
    "save_last_n_epochs": int, "save_last_n_steps_state": int, "save_last_n_epochs_state": int,
    "output_dir": "DIR", "reg_data_dir": "DIR", "dataset_config": "TOML", "max_token_length": int,
    "gradient_accumulation_steps": int, "network_dim": int, "save_precision": "P", "optimizer_type": "NAME",
    "in_json": "FILE", "dataset_repeats": int,
}
FLAG_OPTIONS = ("enable_bucket", "bucket_no_upscale", "random_crop", "save_state", "save_state_on_train_end",
                "cache_latents", "cache_latents_to_disk", "alpha_mask", "enable_wildcard")


def add_parser(sub) -> None:
    from lora_doctor.commands.common import add_plugin_dir

    p = sub.add_parser(
        "dataset", help="check a training dataset folder (or --dataset_config TOML) before training",
        description="Read a dataset the way sd-scripts will and report what would go wrong: folder names, "
                    "images, buckets, captions, steps and disk. Takes sd-scripts' own dataset options "
                    "(--resolution 512 or --resolution=512). Reads only. Exit code: 0 no errors, 1 errors, 2 usage.")
    p.add_argument("dir", nargs="?", metavar="DIR", help="the --train_data_dir (the parent of the <repeats>_<name> folders)")
    p.add_argument("--train_data_dir", metavar="DIR", help="the same as DIR, as sd-scripts spells it")
    p.add_argument("--script", default="train_network.py", metavar="NAME",
                   help="the training script the dataset is for (sets the bucket step rule; default train_network.py, "
                        "sdxl_train_network.py for SDXL)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("-v", "--verbose", action="store_true", help="show the facts behind each line")
    add_plugin_dir(p)
    group = p.add_argument_group("sd-scripts options (same meaning as in train_network.py)")
    for name, kind in VALUE_OPTIONS.items():
        if kind is int:
            group.add_argument(f"--{name}", type=int, metavar="N")
        else:
            group.add_argument(f"--{name}", metavar=kind)
    for name in FLAG_OPTIONS:
        group.add_argument(f"--{name}", action="store_true")
    p.set_defaults(handler=run)


def check_paths(args) -> None:
    """A DIR or --dataset_config that cannot be read is a usage error, said in one line."""
    from lora_doctor.errors import UsageError

    if args.train_data_dir and args.dir and args.train_data_dir != args.dir:
        raise UsageError(f"two dataset folders: {args.dir} and --train_data_dir {args.train_data_dir}; give one")
    args.dir = args.dir or args.train_data_dir
    if not args.dir and not args.dataset_config:
        raise UsageError("give the dataset folder (lora-doctor dataset DIR) or --dataset_config FILE")
    if args.dir:
        path = Path(os.path.expanduser(args.dir))
        if path.is_file() and path.suffix.lower() in (".toml", ".json"):
            raise UsageError(f"{args.dir} is a dataset config file: lora-doctor dataset --dataset_config {args.dir}")
        if path.is_file():
            raise UsageError(f"{args.dir} is a file: give the folder that holds the <repeats>_<name> image "
                             "folders (e.g. train, holding 10_mychar)")
        if not path.exists():
            raise UsageError(f"{args.dir}: no such folder (give the folder that holds the <repeats>_<name> "
                             "image folders)")
    if args.dataset_config:
        path = Path(os.path.expanduser(args.dataset_config))
        if path.is_dir():
            raise UsageError(f"--dataset_config {args.dataset_config} is a folder: give the .toml file; "
                             f"for a folder of images use lora-doctor dataset {args.dataset_config}")
        if not path.exists():
            raise UsageError(f"--dataset_config {args.dataset_config}: no such file")


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
    from lora_doctor.launch.command import Launch
    from lora_doctor.dataset.layout import STANDALONE

    head = ["lora-doctor", "dataset"] + ([args.dir] if args.dir else [])
    rest = [f"--{k}" if v is True else f"--{k}={v}" for k, v in options.items() if k != "train_data_dir"]
    if args.script != "train_network.py":
        rest.append(f"--script={args.script}")
    # the options are the "script arguments" the corrected-command editor changes
    return Launch(head + rest, STANDALONE, args.script, script_args=rest, options=dict(options))


def run(args) -> int:
    from lora_doctor.context import build_context
    from lora_doctor.host.doctor import run_checks, select, summary
    from lora_doctor.output.render import print_json, render_results
    from lora_doctor.commands.common import load_checks

    check_paths(args)
    options = options_from_args(args)
    launch = standalone_launch(args, options)
    no_probe = {"probe": {"ok": False, "error": "not probed: `lora-doctor dataset` checks files only"}}
    ctx = build_context(launch=launch, options=options, verbose=args.verbose, offline=True, facts=no_probe)
    _, checks, broken = load_checks(args.plugin_dir)
    results = broken + run_checks(select(checks, ["dataset", "plugin"]), ctx)  # plugin.<name>: a broken one
    total = summary(results)
    if args.json:
        from lora_doctor import __version__

        print_json({"version": __version__, "dataset": options.get("train_data_dir") or options.get("dataset_config"),
                    "options": options, "checks": [r.to_json() for r in results], "summary": total})
    else:
        what = options.get("dataset_config") or options.get("train_data_dir")
        render_results(results, total, verbose=args.verbose, header=f"lora-doctor dataset: {what}")
    return 1 if total["errors"] else 0
