"""The table of options sd-scripts' training scripts accept (shipped copy of the research TSV)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


@dataclass(frozen=True)
class OptionSpec:
    """One option: its value shape, default, choices and the scripts that define it."""

    name: str  # without the leading "--"
    type: str  # "flag (store_true)", "str", "int", "float", "str nargs=*", "Path", ...
    default: str
    choices: tuple[str, ...]
    scripts: tuple[str, ...]

    @property
    def is_flag(self) -> bool:
        return self.type.startswith("flag")

    @property
    def is_list(self) -> bool:
        return "nargs=" in self.type


@lru_cache(maxsize=1)
def load_options() -> dict[str, OptionSpec]:
    """name (without --) -> OptionSpec for every option of every known training script."""
    text = resources.files("lora_doctor.data").joinpath("sd-scripts-options.tsv").read_text("utf-8")
    table: dict[str, OptionSpec] = {}
    for row in csv.DictReader(text.splitlines(), delimiter="\t"):
        name = row["option"].lstrip("-")
        choices = tuple(c.strip("'") for c in row["choices"].split("|") if c) if row["choices"] else ()
        table[name] = OptionSpec(name, row["type"], row["default"], choices,
                                 tuple(s.strip() for s in row["scripts"].split(",")))
    return table


def options_for_script(script: str) -> dict[str, OptionSpec]:
    """Options a script (e.g. 'train_network') defines; every known option when it is unknown."""
    table = load_options()
    mine = {k: v for k, v in table.items() if script in v.scripts}
    return mine or table
