"""`--dataset_config`: sd-scripts' voluptuous schema re-stated (sd-scripts library/config_util.py, ConfigSanitizer and load_user_config), with its exact messages.

`validate` returns the errors sd-scripts would raise (`extra keys not allowed @ data[...]` …);
`layout_from_config` turns a valid file into datasets/subsets with the lookup order
subset → dataset → general → command line → default.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from lora_doctor.dataset.layout import (DEFAULT_CAPTION_EXTENSION, Dataset, Layout, OptionError, Settings, Subset,
                           caption_extension, load_config_file, opt_flag, opt_int, parse_resolution)
from lora_doctor.model import Finding, Severity

INT, FLOAT, BOOL, STR, NUM, TABLE = "int", "float", "bool", "str", "float|int", "table"
PAIR_FLOAT, RESO = "[float, float]", "int or [int, int]"

ASCENDABLE = {
    "color_aug": BOOL, "face_crop_aug_range": PAIR_FLOAT, "flip_aug": BOOL, "num_repeats": INT,
    "random_crop": BOOL, "shuffle_caption": BOOL, "keep_tokens": INT, "keep_tokens_separator": STR,
    "secondary_separator": STR, "caption_separator": STR, "enable_wildcard": BOOL, "token_warmup_min": INT,
    "token_warmup_step": NUM, "caption_prefix": STR, "caption_suffix": STR, "custom_attributes": TABLE,
    "resize_interpolation": STR, "caption_dropout_every_n_epochs": INT, "caption_dropout_rate": NUM,
    "caption_tag_dropout_rate": NUM, "caption_extension": STR, "class_tokens": STR, "cache_info": BOOL,
}
SUBSET_ONLY = {"image_dir": STR, "is_reg": BOOL, "alpha_mask": BOOL, "metadata_file": STR,
               "conditioning_data_dir": STR}
DATASET_LEVEL = {
    "batch_size": INT, "bucket_no_upscale": BOOL, "bucket_reso_steps": INT, "enable_bucket": BOOL,
    "max_bucket_reso": INT, "min_bucket_reso": INT, "validation_seed": INT, "validation_split": FLOAT,
    "resolution": RESO, "network_multiplier": FLOAT, "resize_interpolation": STR,
}
SUBSET_KEYS = {**ASCENDABLE, **SUBSET_ONLY}
DATASET_KEYS = {**ASCENDABLE, **DATASET_LEVEL, "subsets": "list"}
GENERAL_KEYS = {**ASCENDABLE, **DATASET_LEVEL}


def _type_ok(kind: str, value) -> bool:
    # voluptuous checks isinstance, so a bool passes as an int (True is an int in Python)
    if kind == INT:
        return isinstance(value, int)
    if kind == FLOAT:
        return isinstance(value, float)
    if kind == NUM:
        return isinstance(value, (int, float))
    if kind == BOOL:
        return isinstance(value, bool)
    if kind == STR:
        return isinstance(value, str)
    if kind == TABLE:
        return isinstance(value, dict)
    if kind == PAIR_FLOAT:
        return isinstance(value, list) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
    if kind == RESO:
        return isinstance(value, int) or (isinstance(value, list) and len(value) == 2
                                          and all(isinstance(v, int) for v in value))
    return True


def _expected(kind: str) -> str:
    return {INT: "int", FLOAT: "float", NUM: "float", BOOL: "bool", STR: "str", TABLE: "dict",
            PAIR_FLOAT: "float", RESO: "int"}.get(kind, kind)


def _check_table(table: dict, allowed: dict, path: str, errors: list, wrong_level: dict) -> None:
    for key, value in table.items():
        where = f"{path}['{key}']"
        if key not in allowed:
            errors.append(("unknown", where, key, wrong_level.get(key, "")))
        elif allowed[key] != "list" and not _type_ok(allowed[key], value):
            errors.append(("type", where, key, _expected(allowed[key])))


def validate(data) -> list[tuple[str, str, str, str]]:
    """(kind, path, key, hint) for every error voluptuous would report; [] when valid."""
    errors: list[tuple[str, str, str, str]] = []
    if not isinstance(data, dict):
        return [("type", "data", "", "dict")]
    top = {"general": "table", "datasets": "list"}
    for key in data:
        if key not in top:
            errors.append(("unknown", f"data['{key}']", key,
                           "belongs inside [[datasets.subsets]]" if key in SUBSET_KEYS else
                           "belongs inside [general] or [[datasets]]" if key in GENERAL_KEYS else ""))
    general = data.get("general", {})
    if isinstance(general, dict):
        _check_table(general, GENERAL_KEYS, "data['general']", errors,
                     {k: "belongs inside [[datasets.subsets]]" for k in SUBSET_ONLY})
    datasets = data.get("datasets", [])
    if not isinstance(datasets, list):
        errors.append(("type", "data['datasets']", "datasets", "list"))
        datasets = []
    for i, ds in enumerate(datasets):
        path = f"data['datasets'][{i}]"
        if not isinstance(ds, dict):
            errors.append(("type", path, "", "dict"))
            continue
        _check_table(ds, DATASET_KEYS, path, errors, {k: "belongs inside [[datasets.subsets]]" for k in SUBSET_ONLY})
        kinds = set()
        for j, sub in enumerate(ds.get("subsets", []) if isinstance(ds.get("subsets", []), list) else []):
            spath = f"{path}['subsets'][{j}]"
            if not isinstance(sub, dict):
                errors.append(("type", spath, "", "dict"))
                continue
            _check_table(sub, SUBSET_KEYS, spath, errors,
                         {k: "belongs in [[datasets]] or [general], not in a subset" for k in DATASET_LEVEL})
            kinds.add("ft" if "metadata_file" in sub else "db")
            if "metadata_file" not in sub and "image_dir" not in sub:
                errors.append(("required", f"{spath}['image_dir']", "image_dir", ""))
        if len(kinds) > 1:
            errors.append(("mixed", path, "", ""))
    return errors


def _message(kind: str, where: str, expected: str) -> str:
    if kind == "unknown":
        return f"extra keys not allowed @ {where}"
    if kind == "required":
        return f"required key not provided @ {where}"
    if kind == "mixed":
        return ("DreamBooth subset and fine tuning subset cannot be mixed in the same dataset. "
                f"Please split them into separate datasets. @ {where}")
    return f"expected {expected} for dictionary value @ {where}"


def error_finding(path: Path, kind: str, where: str, key: str, hint: str) -> Finding:
    """One schema error as a finding naming the file, the key and the fix."""
    message = _message(kind, where, hint)
    if kind == "unknown":
        close = difflib.get_close_matches(key, list(SUBSET_KEYS) + list(GENERAL_KEYS), n=1, cutoff=0.7)
        if hint:
            fix = f"Move `{key}` to the right table: it {hint}."
        elif close:
            fix = f"`{key}` is not a key sd-scripts knows: did you mean `{close[0]}`?"
        else:
            fix = f"Remove `{key}`: sd-scripts' dataset schema does not have it (see docs/dataset.md for the keys)."
        cause = "config.dataset_toml_unknown_key"
    elif kind == "required":
        fix, cause = "Add image_dir = '<folder with the images>' to this [[datasets.subsets]] table.", None
    elif kind == "mixed":
        fix, cause = "Put subsets with metadata_file and subsets with only image_dir in separate [[datasets]].", None
    else:
        example = {"float": "0.0 (with a decimal point)", "int": "a whole number without quotes",
                   "bool": "true or false without quotes", "str": "a quoted string"}.get(hint, hint)
        fix, cause = f"Write `{key}` as {example}.", None
    return Finding(Severity.ERROR, f"{path.name}: {message}",
                   detail="sd-scripts logs `Invalid user config / ユーザ設定の形式が正しくないようです` and stops "
                          "(voluptuous.error.MultipleInvalid).",
                   fix=fix, cause=cause, facts={"file": str(path), "key": where})


def _pick(name, subset: dict, dataset: dict, general: dict, default):
    for table in (subset, dataset, general):
        if name in table:
            return table[name]
    return default


def _table_of(name: str, path: Path, subset: dict, dataset: dict, general: dict) -> str:
    """Where in the TOML `name` is set, as the user finds it ("dataset.toml [general], line 3"), or ''."""
    table = ("[[datasets.subsets]]" if name in subset else "[[datasets]]" if name in dataset
             else "[general]" if name in general else "")
    if not table:
        return ""
    lines = []
    try:
        header = ""
        for no, text in enumerate(path.read_text("utf-8").splitlines(), 1):
            stripped = text.strip()
            if stripped.startswith("["):
                header = stripped.split("#", 1)[0].strip()
            elif stripped.split("=", 1)[0].strip() == name and header == table:
                lines.append(no)
    except (OSError, UnicodeDecodeError):
        pass
    return f"{path.name} {table}" + (f", line {lines[0]}" if len(lines) == 1 else "")


def layout_from_config(ctx) -> Layout:
    """Datasets and findings from --dataset_config (other dataset options are ignored by sd-scripts)."""
    options = ctx.options
    layout = Layout("config")
    path = ctx.path_option("dataset_config")
    ignored = [o for o in ("train_data_dir", "reg_data_dir", "in_json") if options.get(o)]
    if ignored:
        layout.findings.append(Finding(
            Severity.WARN, f"--dataset_config is given, so sd-scripts ignores {', '.join('--' + o for o in ignored)}",
            fix="Put every folder in the TOML, or drop --dataset_config to use the folders.",
            facts={"ignored": ignored}))
    data, problem = load_config_file(path)
    if problem is not None:
        layout.findings.append(problem)
        layout.fatal = True
        return layout
    errors = validate(data)
    if errors:
        layout.findings += [error_finding(path, *e) for e in errors]
        layout.fatal = True
        return layout
    general = data.get("general", {})
    try:
        cli = Settings(resolution=parse_resolution(options.get("resolution")),
                       enable_bucket=opt_flag(options, "enable_bucket"),
                       min_bucket_reso=opt_int(options, "min_bucket_reso", 256),
                       max_bucket_reso=opt_int(options, "max_bucket_reso", 1024),
                       bucket_reso_steps=opt_int(options, "bucket_reso_steps", 64),
                       bucket_no_upscale=opt_flag(options, "bucket_no_upscale"),
                       batch_size=opt_int(options, "train_batch_size", 1))
    except OptionError as exc:
        layout.findings.append(Finding(Severity.ERROR, str(exc), fix="Fix the option value."))
        layout.fatal = True
        return layout
    cli_subset = {"num_repeats": opt_int(options, "dataset_repeats", 1), "caption_extension": caption_extension(options),
                  "random_crop": opt_flag(options, "random_crop"), "caption_separator": options.get("caption_separator") or ",",
                  "alpha_mask": opt_flag(options, "alpha_mask"), "enable_wildcard": opt_flag(options, "enable_wildcard")}
    if not data.get("datasets"):
        layout.findings.append(Finding(
            Severity.ERROR, f"{path.name} has no [[datasets]]: sd-scripts finds no data and exits 0 without training",
            fix="Add a [[datasets]] table with at least one [[datasets.subsets]] image_dir = '…'.",
            cause="dataset.no_images", facts={"file": str(path)}))
    for ds in data.get("datasets", []):
        reso = _pick("resolution", {}, ds, general, None)
        settings = Settings(
            resolution=parse_resolution(reso) if reso is not None else cli.resolution,
            enable_bucket=_pick("enable_bucket", {}, ds, general, cli.enable_bucket),
            min_bucket_reso=_pick("min_bucket_reso", {}, ds, general, cli.min_bucket_reso),
            max_bucket_reso=_pick("max_bucket_reso", {}, ds, general, cli.max_bucket_reso),
            bucket_reso_steps=_pick("bucket_reso_steps", {}, ds, general, cli.bucket_reso_steps),
            bucket_no_upscale=_pick("bucket_no_upscale", {}, ds, general, cli.bucket_no_upscale),
            batch_size=_pick("batch_size", {}, ds, general, cli.batch_size))
        dataset = Dataset(settings)
        for j, sub in enumerate(ds.get("subsets", [])):
            values = {k: _pick(k, sub, ds, general, v) for k, v in cli_subset.items()}
            if "metadata_file" in sub:
                layout.mode = "fine-tune"
                layout.findings.append(Finding(
                    Severity.INFO, f"subset {j} uses metadata_file {sub['metadata_file']}: its images are not checked"))
                continue
            image_dir = Path(sub["image_dir"]).expanduser()
            if not image_dir.is_absolute():
                image_dir = ctx.cwd / image_dir
            dataset.subsets.append(Subset(
                image_dir, int(values["num_repeats"]), _pick("class_tokens", sub, ds, general, None),
                bool(sub.get("is_reg", False)), str(values["caption_extension"] or DEFAULT_CAPTION_EXTENSION),
                str(values["caption_separator"]), bool(values["random_crop"]), bool(values["alpha_mask"]),
                bool(values["enable_wildcard"]), where=f"{path.name}: image_dir = '{sub['image_dir']}'",
                caption_extension_from=_table_of("caption_extension", path, sub, ds, general)))
        layout.datasets.append(dataset)
    return layout
