"""Builtin plugin: the training command's options against the ones its script accepts, the
values argparse or sd-scripts would reject, and the files the options name."""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path

from lora_doctor.launch.edit import corrected, quote
from lora_doctor.hookspecs import hookimpl
from lora_doctor.model import Check, Finding, Severity

SDXL_SCRIPTS = {"sdxl_train_network", "sdxl_train", "sdxl_train_control_net", "sdxl_train_textual_inversion"}
# Options only the SDXL scripts define (sd-scripts v0.10.1: library/sdxl_train_util.py, add_sdxl_training_arguments).
SDXL_ONLY = {"cache_text_encoder_outputs", "cache_text_encoder_outputs_to_disk", "disable_mmap_load_safetensors"}
# sd-scripts' optimizer names (case-insensitive: library/train_util.py, get_optimizer lower-cases them) and
# torch.optim's classes (exact case).
OPTIMIZERS = {o.lower() for o in (
    "AdamW", "AdamW8bit", "SGDNesterov", "SGDNesterov8bit", "Lion", "Lion8bit", "PagedAdamW8bit",
    "PagedLion8bit", "PagedAdamW", "PagedAdamW32bit", "DAdaptation", "DAdaptAdaGrad", "DAdaptAdam",
    "DAdaptAdan", "DAdaptAdanIP", "DAdaptLion", "DAdaptSGD", "DAdaptAdamPreprint", "Prodigy", "AdaFactor",
    "RAdamScheduleFree", "AdamWScheduleFree", "SGDScheduleFree")}
TORCH_OPTIM = {"SGD", "Adam", "AdamW", "Adadelta", "Adagrad", "Adamax", "ASGD", "LBFGS", "NAdam", "RAdam",
               "RMSprop", "Rprop", "SparseAdam", "Adafactor", "Muon"}
# transformers' SchedulerType values (the list its error prints) plus sd-scripts' own "adafactor".
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "cosine_warmup_with_min_lr",
              "warmup_stable_decay", "piecewise_constant", "adafactor")
# network modules that live in a separate package: top-level module -> pip name
NETWORK_PACKAGES = {"lycoris": "lycoris_lora"}
CAPTION_AUGMENTATION = ("shuffle_caption", "caption_dropout_rate", "caption_tag_dropout_rate", "token_warmup_step")


def _on(value) -> bool:
    """A flag as sd-scripts sees it: True from the command line, true in a config file."""
    return value is True or (isinstance(value, str) and value.strip().lower() in ("true", "1")) or (
        isinstance(value, (int, float)) and not isinstance(value, bool) and value != 0)


def _number(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class _Command:
    """The command's tokens and how to print a corrected copy of it."""

    def __init__(self, launch):
        self.launch = launch

    def index_of(self, predicate) -> int | None:
        for i, tok in enumerate(self.launch.script_args):
            if predicate(tok):
                return i
        return None

    def option_index(self, written: str) -> int | None:
        return self.index_of(lambda t: t == f"--{written}" or t.startswith(f"--{written}="))

    def corrected(self, edits: dict[int, list[str]]) -> str:
        """The command with script_args[i] replaced by edits[i] (an empty list deletes it)."""
        return corrected(self.launch, tokens=edits)

    def renamed(self, written: str, full: str) -> str:
        i = self.option_index(written)
        if i is None:
            return ""
        tok = self.launch.script_args[i]
        return self.corrected({i: ["--" + full + tok[len(written) + 2:]]})

    def without_option(self, written: str) -> str:
        """The command without the option (and its values, as the options table knows them)."""
        if self.option_index(written) is None:
            return ""
        return corrected(self.launch, remove=(self.launch.abbreviations.get(written, written),))


def _script_path(ctx) -> Path:
    script = Path(ctx.launch.script)
    return script if script.is_absolute() else ctx.cwd / script


def _find_script_elsewhere(ctx, name: str) -> Path | None:
    candidates = []
    if ctx.sd_scripts_dir is not None:
        candidates.append(ctx.sd_scripts_dir / name)
    for sub in ("sd-scripts", "kohya_ss/sd-scripts"):
        candidates.append(ctx.cwd / sub / name)
    try:
        candidates += [p / name for p in sorted(ctx.cwd.iterdir()) if p.is_dir()]
    except OSError:
        pass
    return next((c for c in candidates if c.is_file()), None)


def check_script(ctx, cmd: _Command):
    path = _script_path(ctx)
    if path.is_file():
        return True, []
    name = Path(ctx.launch.script).name
    elsewhere = _find_script_elsewhere(ctx, name)
    fix = "Run the command from the sd-scripts folder (the one holding train_network.py and library/)."
    finding = Finding(Severity.ERROR, f"{ctx.launch.script} does not exist in {ctx.cwd}",
                      detail="The training script is looked up relative to the working directory.",
                      fix=fix + (f" It is in {elsewhere.parent}." if elsewhere else ""),
                      fix_command=f"cd {quote(str(elsewhere.parent))}" if elsewhere else "",
                      cause="install.script_not_found")
    return False, [finding]


def check_names(ctx, cmd: _Command, known: dict, source: str):
    """Unknown, abbreviated, ambiguous and SDXL-only option names; stray positional tokens."""
    from lora_doctor.launch.command import parse_script_options

    launch = ctx.launch
    abbreviations: dict = {}
    ambiguous: dict = {}
    cli, positionals = parse_script_options(launch.script_args, known=known, abbreviations=abbreviations,
                                            ambiguous=ambiguous)
    script = launch.script_name
    for written, full in abbreviations.items():
        yield Finding(Severity.WARN, f"--{written} is accepted as --{full} (an argparse abbreviation)",
                      detail="argparse silently completes unique prefixes; a later sd-scripts version "
                             "with another option starting the same way turns this into an error.",
                      fix=f"Write the option in full: --{full}.", fix_command=cmd.renamed(written, full))
    for written, candidates in ambiguous.items():
        shown = ", ".join("--" + c for c in candidates[:6]) + (" …" if len(candidates) > 6 else "")
        yield Finding(Severity.ERROR, f"--{written} is ambiguous: it could be {shown}",
                      detail=f"{script}.py stops with `ambiguous option: --{written}` (exit code 2).",
                      fix="Write the option you mean in full.", cause="args.unrecognized_option")
    for name in cli:
        if name in known or name in ambiguous:
            continue
        if name in SDXL_ONLY and script not in SDXL_SCRIPTS:
            yield Finding(Severity.ERROR, f"--{name} is an SDXL option; {script}.py does not define it",
                          detail=f"{script}.py stops with `unrecognized arguments: --{name}`.",
                          fix=f"For an SDXL model run sdxl_{script}.py instead; for SD 1.x/2.x remove --{name}.",
                          fix_command=cmd.without_option(name), cause="model.sdxl_options_with_sd15_script")
            continue
        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
        yield Finding(Severity.ERROR, f"--{name} is not an option of {script or launch.script}"
                      + (f"; did you mean --{close[0]}?" if close else ""),
                      detail=f"It stops with `unrecognized arguments: --{name}` (exit code 2). "
                             f"Options read from {source}.",
                      fix=f"Use --{close[0]}." if close else f"Remove --{name} (check the spelling in {script}.py's --help).",
                      fix_command=cmd.renamed(name, close[0]) if close else "",
                      cause="args.unrecognized_option")
    for token in positionals:
        yield _stray_token(cmd, token, script)
    for key in launch.config_options:
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
            yield Finding(Severity.WARN, f"{key} in {launch.config_file} is not an option of {script}.py; "
                          "it is silently ignored" + (f" (did you mean {close[0]}?)" if close else ""),
                          fix=f"Rename it to {close[0]}." if close else f"Remove {key} from the config file.")


def _stray_token(cmd: _Command, token: str, script: str) -> Finding:
    args = cmd.launch.script_args
    i = cmd.index_of(lambda t: t == token)
    prev = args[i - 1] if i else ""
    edits, joined = {}, ""
    if i and prev.startswith("--"):
        sep = "" if prev.endswith(",") or token.startswith(",") else " "
        joined = prev + sep + token
        edits = {i - 1: [joined], i: []}
    elif i and i >= 2 and args[i - 2].startswith("--") and "=" not in args[i - 2]:
        sep = "" if prev.endswith(",") or token.startswith(",") else " "
        joined = f"{args[i - 2]}={prev}{sep}{token}"
        edits = {i - 2: [joined], i - 1: [], i: []}
    fix = ("Remove the space inside the value, or put the value in quotes"
           + (f": {joined.split('=', 1)[0]}=\"{joined.split('=', 1)[1]}\"" if "=" in joined else "") + ".")
    return Finding(Severity.ERROR, f"stray argument {token!r}: a value with a space was split in two",
                   detail=f"{script}.py stops with `unrecognized arguments: {token}`"
                          + (f" (after {prev})." if prev else "."),
                   fix=fix, fix_command=cmd.corrected(edits) if edits else "",
                   cause="args.stray_token_from_whitespace")


def check_values(ctx, cmd: _Command, known: dict):
    """Choices argparse enforces (command line only: config values bypass them), optimizer and
    scheduler names, numbers."""
    launch = ctx.launch
    opts = ctx.options
    for name, value in launch.cli_options.items():
        spec = known.get(name)
        if spec is None or spec.is_flag or not isinstance(value, str):
            continue
        if spec.choices and value not in spec.choices:
            if name == "max_token_length" and value == "75":
                yield Finding(Severity.ERROR, "--max_token_length=75 is rejected: 75 is the default, only 150 or 225 may be given",
                              fix="Remove --max_token_length (75 tokens is what you get without it).",
                              fix_command=cmd.without_option(name), cause="args.invalid_choice")
                continue
            shown = ", ".join(c for c in spec.choices if c != "None")
            close = difflib.get_close_matches(value, list(spec.choices), n=1, cutoff=0.5)
            yield Finding(Severity.ERROR, f"--{name}={value} is not one of: {shown}",
                          detail=f"argparse stops with `argument --{name}: invalid choice: '{value}'`.",
                          fix=f"Use --{name}={close[0] if close else spec.choices[-1]}.",
                          fix_command=cmd.corrected({cmd.option_index(name): [f"--{name}={close[0]}"]})
                          if close and cmd.option_index(name) is not None else "",
                          cause="args.invalid_choice")
        elif spec.type in ("int", "float") and _bad_number(value, spec.type):
            yield Finding(Severity.ERROR, f"--{name}={value} is not a{'n' * (spec.type == 'int')} {spec.type}",
                          detail=f"argparse stops with `argument --{name}: invalid {spec.type} value: '{value}'`.",
                          fix=f"Give --{name} a number.")
    optimizer = opts.get("optimizer_type")
    if isinstance(optimizer, str) and optimizer and "." not in optimizer \
            and optimizer.lower() not in OPTIMIZERS and optimizer not in TORCH_OPTIM:
        names = sorted({"AdamW", "AdamW8bit", "Lion", "Prodigy", "AdaFactor", "DAdaptAdam", "PagedAdamW8bit",
                        "AdamWScheduleFree", "SGDNesterov", *TORCH_OPTIM})
        close = difflib.get_close_matches(optimizer, names, n=1, cutoff=0.5)
        yield Finding(Severity.ERROR, f"--optimizer_type={optimizer} is not an optimizer sd-scripts knows"
                      + (f"; did you mean {close[0]}?" if close else ""),
                      detail="Unknown names are looked up in torch.optim and fail there; "
                             "a class from another package is written module.Class.",
                      fix=f"Use --optimizer_type={close[0] if close else 'AdamW'}.", cause="args.invalid_choice")
    scheduler = opts.get("lr_scheduler")
    if isinstance(scheduler, str) and scheduler and not opts.get("lr_scheduler_type") \
            and scheduler.lower() not in SCHEDULERS:
        close = difflib.get_close_matches(scheduler, SCHEDULERS, n=1, cutoff=0.5)
        i = cmd.option_index("lr_scheduler")
        yield Finding(Severity.ERROR, f"--lr_scheduler={scheduler} is not a scheduler"
                      + (f"; did you mean {close[0]}?" if close else ""),
                      detail=f"Training stops after loading the model with `{scheduler} is not a valid SchedulerType`.",
                      fix=f"Use one of: {', '.join(SCHEDULERS)}.",
                      fix_command=cmd.corrected({i: [f"--lr_scheduler={close[0]}"]}) if close and i is not None else "",
                      cause="args.invalid_choice")


# train_util.prepare_dataset_args: `tuple([int(r) for r in args.resolution.split(",")])`, one or two numbers
_RESOLUTION = re.compile(r"\s*\d+\s*(?:,\s*\d+\s*)?")
# what a quoted Windows path ending in a backslash leaves: `\"` is an escaped quote, so the value
# runs on to the next quote and swallows the options between (CommandLineToArgvW)
_SWALLOWED = re.compile(r'"\s+--[A-Za-z]')


def check_formats(ctx, cmd: _Command):
    """Values argparse accepts as strings but sd-scripts cannot read: a --resolution that is not
    `W,H` or one number; an option that swallowed the ones after it (a quoted path ending in `\\`)."""
    launch = ctx.launch
    for name, value in launch.cli_options.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, str) and '"' in v and (m := _SWALLOWED.search(v)):
                path = v[:m.start()]
                swallowed = v[m.start() + 1:].split()
                i = cmd.option_index(name)
                yield Finding(Severity.ERROR, f"--{name} swallowed the options after it: {', '.join(t.split('=', 1)[0] for t in swallowed if t.startswith('--'))}",
                              detail=f'Its value ends with a backslash before the closing quote ("{path}\\"): '
                                     "Windows reads \\\" as a literal quote, so the value runs on to the next quote "
                                     "and those options never reach the script (it then fails as if they were missing).",
                              fix=f'Drop the trailing backslash ("{path.rstrip(chr(92))}") or write the path with '
                                  "forward slashes.",
                              fix_command=cmd.corrected({i: [f"--{name}={path.rstrip(chr(92))}", *swallowed]})
                              if i is not None else "",
                              cause="args.trailing_backslash_escapes_quote")
    resolution = ctx.options.get("resolution")
    if isinstance(resolution, list) and len(resolution) == 1:
        resolution = resolution[0]
    if isinstance(resolution, str) and resolution.strip() and not _RESOLUTION.fullmatch(resolution):
        numbers = re.findall(r"\d+", resolution)
        fixed = ",".join(numbers[:2]) if 1 <= len(numbers) <= 2 else ""
        i = cmd.option_index("resolution")
        yield Finding(Severity.ERROR, f"--resolution={resolution} is not W,H or one number",
                      detail="sd-scripts splits --resolution at commas and reads each part as an integer "
                             "(train_util.prepare_dataset_args), so it stops with `invalid literal for int()`.",
                      fix=f"Write --resolution={fixed}." if fixed else "Write the resolution as W,H (e.g. 1024,1024).",
                      fix_command=cmd.corrected({i: [f"--resolution={fixed}"]}) if fixed and i is not None else "",
                      cause="args.resolution_format_invalid")


def static_findings(launch) -> list[Finding]:
    """The option checks that need only the command itself (no file, no interpreter): names
    against the options table, values, formats, combinations, network_args. `diagnose` runs them
    on a command a pasted log carries (plugins/command_diagnose.py)."""
    from types import SimpleNamespace

    from lora_doctor.launch.script_options import accepted_options

    if launch is None or not launch.script:
        return []
    known, source = accepted_options(launch.script, None, None)
    if "every known option is accepted" in source:
        return []
    ctx = SimpleNamespace(launch=launch, options=dict(launch.options), cwd=Path("."), sd_scripts_dir=None)
    cmd = _Command(launch)
    out: list[Finding] = []
    for part in (check_names(ctx, cmd, known, source), check_values(ctx, cmd, known), check_formats(ctx, cmd),
                 check_combinations(ctx, cmd), check_network_args(ctx, cmd)):
        out += list(part)
    return out


def _bad_number(value: str, kind: str) -> bool:
    try:
        int(value) if kind == "int" else float(value)
    except ValueError:
        return True
    return False


def check_combinations(ctx, cmd: _Command):
    """Options sd-scripts refuses together (train_network.py, NetworkTrainer.train; library/train_util.py,
    verify_training_args and get_optimizer)."""
    o = ctx.options
    script = ctx.launch.script_name
    mp = str(o.get("mixed_precision") or "no")

    def bad(summary, fix, cause="args.incompatible_options", detail="", fix_command=""):
        return Finding(Severity.ERROR, summary, detail=detail, fix=fix, fix_command=fix_command, cause=cause)

    if _on(o.get("cache_latents")) or _on(o.get("cache_latents_to_disk")):
        for aug in ("color_aug", "random_crop"):
            if _on(o.get(aug)):
                yield bad(f"--cache_latents cannot be used with --{aug}",
                          f"Remove --{aug}, or stop caching latents (slower, more VRAM).",
                          detail="sd-scripts asserts: `when caching latents, either color_aug or random_crop cannot be used`.",
                          fix_command=cmd.without_option(aug))
    if _on(o.get("full_fp16")) and mp != "fp16":
        yield bad(f"--full_fp16 needs --mixed_precision=fp16 (it is {mp})",
                  "Add --mixed_precision=fp16, or remove --full_fp16.",
                  detail="sd-scripts asserts: `full_fp16 requires mixed precision='fp16'`.",
                  fix_command=cmd.without_option("full_fp16"))
    if _on(o.get("full_bf16")) and mp != "bf16":
        yield bad(f"--full_bf16 needs --mixed_precision=bf16 (it is {mp})",
                  "Add --mixed_precision=bf16, or remove --full_bf16.",
                  detail="sd-scripts asserts: `full_bf16 requires mixed precision='bf16'`.",
                  fix_command=cmd.without_option("full_bf16"))
    if _on(o.get("fp8_base")) and mp == "no":
        yield bad("--fp8_base needs --mixed_precision fp16 or bf16", "Add --mixed_precision=bf16 (or fp16).")
    if o.get("optimizer_type") and (_on(o.get("use_8bit_adam")) or _on(o.get("use_lion_optimizer"))):
        old = "use_8bit_adam" if _on(o.get("use_8bit_adam")) else "use_lion_optimizer"
        yield bad(f"--{old} and --optimizer_type together", f"Remove --{old}; --optimizer_type says it all.",
                  fix_command=cmd.without_option(old))
    if _on(o.get("scale_v_pred_loss_like_noise_pred")) and not _on(o.get("v_parameterization")):
        yield bad("--scale_v_pred_loss_like_noise_pred needs --v_parameterization",
                  "Add --v_parameterization (v-prediction model) or remove --scale_v_pred_loss_like_noise_pred.")
    if o.get("v_pred_like_loss") not in (None, "") and _on(o.get("v_parameterization")):
        yield bad("--v_pred_like_loss cannot be used with --v_parameterization", "Remove --v_pred_like_loss.")
    if _on(o.get("fused_backward_pass")) and str(o.get("optimizer_type") or "").lower() != "adafactor":
        yield bad("--fused_backward_pass needs --optimizer_type=AdaFactor", "Use AdaFactor or remove --fused_backward_pass.")
    if script in SDXL_SCRIPTS and _on(o.get("v2")):
        yield bad(f"--v2 with {script}.py: SDXL training stops with `v2 cannot be enabled in SDXL training`",
                  "Remove --v2 (it is for SD 2.x models with train_network.py).", fix_command=cmd.without_option("v2"))
    if _on(o.get("cache_text_encoder_outputs")) or _on(o.get("cache_text_encoder_outputs_to_disk")):
        used = [a for a in CAPTION_AUGMENTATION if _on(o.get(a)) or (_number(o.get(a)) or 0) > 0]
        if used:
            yield bad("--cache_text_encoder_outputs cannot be used with " + ", ".join("--" + u for u in used),
                      "Remove the caption augmentation, or stop caching the text encoder outputs.",
                      cause="config.te_cache_with_caption_augmentation")
    for name in ("sample_every_n_epochs", "sample_every_n_steps"):
        if o.get(name) is not None and _number(o.get(name)) == 0:
            yield bad(f"--{name}=0: the sample interval must be positive",
                      f"Remove --{name} (no samples) or give it a positive value.",
                      cause="args.sample_every_n_epochs_zero", fix_command=cmd.without_option(name))


def check_network_args(ctx, cmd: _Command):
    value = ctx.options.get("network_args")
    if value is None:
        return
    if isinstance(value, str):
        yield Finding(Severity.ERROR, f"network_args is one string ({value!r}), not a list of key=value items",
                      detail="train_network.py splits every item on '='; a string is split into single characters.",
                      fix='In the config file write a list: network_args = ["conv_dim=4", "conv_alpha=1"].',
                      cause="args.network_args_malformed")
        return
    items = value if isinstance(value, list) else [value]
    for item in items:
        text = str(item)
        if "=" not in text or len(text.split("=")) > 2 and " " in text.strip():
            fixed = text.replace(":", "=", 1) if ":" in text and "=" not in text else ""
            yield Finding(Severity.ERROR, f"network_args item {text!r} is not key=value",
                          detail="train_network.py stops with `not enough values to unpack (expected 2, got 1)`.",
                          fix=(f"Write it as {fixed!r}." if fixed else "Give each item as its own key=value word, "
                               "e.g. --network_args \"conv_dim=4\" \"conv_alpha=1\"."),
                          cause="args.network_args_malformed")


def _find_spec(python: str, module: str, cwd: Path) -> dict | None:
    code = ("import importlib.util,json,sys\n"
            "try:\n s=importlib.util.find_spec(sys.argv[1])\n"
            " print(json.dumps({'found':s is not None,'locations':list(s.submodule_search_locations or []) if s else []}))\n"
            "except Exception as e:\n print(json.dumps({'found':False,'error':str(e)}))\n")
    from lora_doctor.subproc import run_bounded

    got = run_bounded([python, "-c", code, module], 10, cwd=str(cwd))
    try:
        return json.loads(got.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return None


def check_network_module(ctx, cmd: _Command, script_ok: bool):
    script = ctx.launch.script_name
    module = ctx.options.get("network_module")
    if not module:
        if "network" in script:
            yield Finding(Severity.ERROR, f"--network_module is missing; {script}.py needs it (usually networks.lora)",
                          fix="Add --network_module=networks.lora.", cause="args.network_module_not_found")
        return
    if not isinstance(module, str) or not script_ok:
        return
    root = _script_path(ctx).parent
    parts = module.split(".")
    local = root.joinpath(*parts[:-1], parts[-1] + ".py")
    if (root / parts[0]).is_dir() or parts[0] == "networks":
        if local.is_file() or root.joinpath(*parts, "__init__.py").is_file():
            return
        folder = root.joinpath(*parts[:-1])
        try:
            choices = [".".join([*parts[:-1], p.stem]) for p in folder.glob("*.py") if not p.name.startswith("_")]
        except OSError:
            choices = []
        close = difflib.get_close_matches(module, choices, n=1, cutoff=0.6)
        i = cmd.option_index("network_module")
        yield Finding(Severity.ERROR, f"--network_module={module}: there is no {local.relative_to(root)} in {root}"
                      + (f"; did you mean {close[0]}?" if close else ""),
                      fix=f"Use --network_module={close[0] if close else 'networks.lora'}.",
                      fix_command=cmd.corrected({i: [f"--network_module={close[0]}"]}) if close and i is not None else "",
                      cause="args.network_module_not_found")
        return
    spec = _find_spec(ctx.python, parts[0], root)
    if spec is None:
        return  # the target interpreter did not answer; the probe check reports that
    package = NETWORK_PACKAGES.get(parts[0])
    if not spec.get("found"):
        if package:
            yield Finding(Severity.ERROR, f"--network_module={module} needs the {package} package, "
                          f"which {ctx.python} does not have",
                          fix="Install it into the training environment.",
                          fix_command=f"{quote(ctx.python)} -m pip install {package}",
                          cause="versions.network_module_package_missing")
        else:
            yield Finding(Severity.ERROR, f"--network_module={module}: no module {parts[0]} for {ctx.python}",
                          fix="Check the spelling (the built-in LoRA is networks.lora) or install its package.",
                          cause="args.network_module_not_found")
        return
    if len(parts) > 1 and spec.get("locations"):
        base = Path(spec["locations"][0]).joinpath(*parts[1:-1])
        if not (base / f"{parts[-1]}.py").exists() and not (base / parts[-1] / "__init__.py").exists():
            yield Finding(Severity.ERROR, f"--network_module={module}: {parts[0]} has no module {'.'.join(parts[1:])}",
                          fix=f"Check the module name in {parts[0]}'s documentation (LyCORIS: lycoris.kohya).",
                          cause="args.network_module_not_found")


def check_paths(ctx, cmd: _Command):
    launch = ctx.launch
    o = ctx.options
    if launch.config_error:
        yield _config_file_error(launch)
    elif launch.config_file:
        yield Finding(Severity.INFO, f"{len(launch.config_options)} options read from {launch.config_file} "
                      "(the command line overrides them)")
    if _on(o.get("output_config")):
        yield Finding(Severity.INFO, "--output_config: this run only writes the options to --config_file and exits")
    dataset = ctx.path_option("dataset_config")
    if dataset is not None and not dataset.is_file():
        yield Finding(Severity.ERROR, f"--dataset_config {o.get('dataset_config')}: no such file",
                      detail="sd-scripts stops with `file not found` after loading the model.",
                      fix="Fix the path (relative paths start at the working directory).",
                      cause="config.dataset_toml_not_found")
    prompts = ctx.path_option("sample_prompts")
    if prompts is not None and not prompts.is_file():
        yield Finding(Severity.WARN, f"--sample_prompts {o.get('sample_prompts')}: no such file; "
                      "training goes on without sample images",
                      fix="Fix the path, or remove --sample_prompts.", cause="config.sample_prompts_file_not_found")
    resume = ctx.path_option("resume")
    if resume is not None and not _on(o.get("resume_from_huggingface")) and not resume.is_dir():
        states = []
        try:
            states = sorted(str(p) for p in resume.parent.glob("*-state") if p.is_dir())
        except OSError:
            pass
        yield Finding(Severity.ERROR, f"--resume {o.get('resume')}: no such saved-state folder",
                      detail=("State folders next to it: " + ", ".join(states[-3:])) if states else
                             "A state folder is written by --save_state (…-state).",
                      fix="Point --resume at an existing …-state folder, or remove --resume to start over.",
                      fix_command=cmd.without_option("resume"), cause="args.resume_state_not_found")


def _config_file_error(launch) -> Finding:
    """--config_file that sd-scripts cannot read: missing, or not TOML (often a Windows path in "…")."""
    error = launch.config_error
    if "not valid TOML" not in error:
        appended = not str(launch.cli_options.get("config_file", "")).endswith(".toml")
        return Finding(Severity.ERROR, f"--config_file: {error}",
                       detail=("sd-scripts appends .toml to the name when it is missing, "
                               if appended else "sd-scripts ") + "logs `… not found.` and stops with exit code 1.",
                       fix="Fix the --config_file path (relative paths start at the working directory).")
    m = re.search(r"line (\d+)", error)
    line = ""
    if m:
        try:
            lines = Path(launch.config_file).read_text("utf-8", "replace").splitlines()
            line = lines[int(m.group(1)) - 1].strip()
        except (OSError, IndexError):
            pass
    where = f"{launch.config_file}" + (f", line {m.group(1)}" if m else "")
    if "\\" in line and '"' in line:
        key, _, value = line.partition("=")
        single = value.strip().replace('"', "'")
        return Finding(Severity.ERROR, f"--config_file {where}: a Windows path in double quotes, where "
                       "backslashes start escape sequences",
                       detail=f"{line}\nsd-scripts stops with a TomlDecodeError before training. ({error})",
                       fix=f"Write the path in single quotes ({key.strip()} = {single}) or with forward slashes.",
                       cause="config.dataset_toml_syntax")
    return Finding(Severity.ERROR, f"--config_file {where} is not valid TOML",
                   detail=(f"{line}\n" if line else "") + f"{error}\nsd-scripts stops with a TomlDecodeError "
                          "before training.",
                   fix="Fix the TOML at that line: a missing quote, bracket or '=' (strings need quotes, "
                       "numbers and true/false do not).",
                   cause="config.dataset_toml_syntax")


# the value types a config file must use, since sd-scripts takes its values as written (library/train_util.py,
# read_config_from_file)
TOML_TYPES = {"int": (int,), "float": (int, float), "int_or_float": (int, float), "str": (str,), "Path": (str,)}


def check_config_values(launch, known: dict):
    """Values in the --config_file that argparse never sees: a number in quotes, a flag as a string,
    a path whose backslash became a control character."""
    shown = launch.config_file
    for key, value in launch.config_options.items():
        spec = known.get(key)
        if isinstance(value, str) and any(c in value for c in "\n\t\r\b\f"):
            yield Finding(Severity.ERROR, f"{key} in {shown} holds a control character: {value!r}",
                          detail="In a double-quoted TOML string \\n, \\t, \\r, \\b and \\f are escapes, so a "
                                 "Windows path such as \"C:\\new\" turns into a line break.",
                          fix=f"Write the path in single quotes: {key} = '{value.encode('unicode_escape').decode()}'"
                              " or use forward slashes.")
        if spec is None or key in launch.cli_options:
            continue
        if spec.is_flag and isinstance(value, str):
            yield Finding(Severity.ERROR if value.strip().lower() in ("false", "0", "no", "") else Severity.WARN,
                          f"{key} = {value!r} in {shown} is a string: sd-scripts treats any non-empty string "
                          "as on", fix=f"Write {key} = true or {key} = false, without quotes.")
        elif not spec.is_list and spec.type in TOML_TYPES and not isinstance(value, bool) \
                and not isinstance(value, TOML_TYPES[spec.type]):
            want = "a string in quotes" if spec.type in ("str", "Path") else "a number without quotes"
            yield Finding(Severity.ERROR, f"{key} = {value!r} in {shown} should be {want}",
                          detail="sd-scripts uses config file values as written, without argparse's conversion; "
                                 "the wrong type fails later, during training.",
                          fix=f"Write {key} = " + (f'"{value}"' if spec.type in ("str", "Path") else
                                                   (str(value).strip() if _number(value) is not None else "<number>"))
                              + ".")


def check_options(ctx):
    """The whole check: script, option names, values, combinations, files."""
    from lora_doctor.launch.script_options import accepted_options

    launch = ctx.launch
    if launch is None or not launch.script:
        yield Finding(Severity.WARN, "no training script found in the command",
                      fix="Give the command as `accelerate launch [options] train_network.py [its options]`.")
        return
    cmd = _Command(launch)
    script_ok, findings = check_script(ctx, cmd)
    yield from findings
    known, source = accepted_options(launch.script, ctx.sd_scripts_dir if script_ok else None, ctx.cwd)
    if "every known option is accepted" in source:
        yield Finding(Severity.INFO, f"{launch.script} is not an sd-scripts training script lora-doctor knows; "
                      "its options are not checked",
                      fix="Pass --sd-scripts DIR when the script lives in an sd-scripts checkout elsewhere.")
        return
    count = 0
    for part in (check_names(ctx, cmd, known, source), check_values(ctx, cmd, known), check_formats(ctx, cmd),
                 check_combinations(ctx, cmd), check_network_args(ctx, cmd),
                 check_network_module(ctx, cmd, script_ok), check_paths(ctx, cmd),
                 check_config_values(launch, known)):
        for finding in part:
            count += finding.severity >= Severity.WARN
            yield finding
    if not count and script_ok:
        yield Finding(Severity.OK, f"{len(launch.options)} options of {launch.script_name}.py look right",
                      facts={"options checked against": source})


@hookimpl
def lora_doctor_register_checks(register):
    """The training command's options (names, values, combinations, files they name)."""
    register(Check(id="args.options", title="Training options", run=check_options, applies="command",
                   timeout=20.0))
