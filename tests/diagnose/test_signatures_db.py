"""The shipped known-error database: every cause of CAUSES.md covered, every signature proven by its examples."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from support import cause_ids
from lora_doctor.diagnose.match import diagnose_text, load_signatures
from lora_doctor.launch.options_table import load_options
from lora_doctor.diagnose.signatures import ID_RE, builtin_sources, load_database
from lora_doctor.diagnose.sigtest import check
from support import DATA

CORPUS = DATA / "corpus"
NOT_CAUSES = {"unknown", "none"}



@pytest.fixture(scope="module")
def db():
    return load_database(builtin_sources())


@pytest.fixture(scope="module")
def host():
    return load_signatures()[1]


def test_causes_file_lists_unique_ids_and_says_how_many():
    ids = cause_ids()
    assert len(ids) == len(set(ids)), "a cause id listed twice"
    assert NOT_CAUSES <= set(ids)
    total = re.search(r"(\d+) cause ids in total", (CORPUS / "CAUSES.md").read_text("utf-8"))
    assert total is None or int(total.group(1)) == len(ids), "CAUSES.md's own count disagrees with its table"


def test_every_cause_has_a_signature_and_nothing_else(db):
    have = {s.id for s in db.signatures}
    want = set(cause_ids()) - NOT_CAUSES
    assert sorted(want - have) == [], "causes without a signature"
    assert sorted(have - want) == [], "signatures whose id is not a CAUSES.md cause"


def test_database_loads_without_any_problem(db):
    assert [str(e) for e in db.errors] == []
    families = {s.id.split(".")[0] for s in db.signatures}
    assert {Path(f).stem for f in db.files} == families, "one file per family, no empty file"


def test_ids_are_family_dot_name_and_live_in_their_family_file(db):
    for s in db.signatures:
        assert ID_RE.match(s.id), s.id
        assert Path(s.file).stem == s.id.split(".")[0], f"{s.id} is in {s.file}"


def test_every_signature_explains_and_fixes(db):
    for s in db.signatures:
        assert s.title and len(s.title) < 90, s.id
        assert s.severity in ("error", "warn", "info"), s.id
        assert len(s.why.split()) >= 15, f"{s.id}: why is too short"
        assert s.fix and all(len(step) > 15 for step in s.fix), s.id
        assert s.refs and all(r.startswith("https://") for r in s.refs), s.id
        assert s.examples, f"{s.id} has no example"
        assert s.counter_examples, f"{s.id} has no counter-example"


def test_edits_name_real_sd_scripts_options(db):
    known = load_options()
    for s in db.signatures:
        names = [o.lstrip("-").split("=", 1)[0] for key in ("add", "remove") for o in s.edit.get(key, [])]
        names += list((s.edit.get("set") or {}).keys())
        for name in names:
            assert name in known, f"{s.id}: edit names unknown option --{name}"


def test_errors_test_finds_no_problem(db):
    """What `lora-doctor errors test` runs: examples match, no equal-rank claims, counter-examples do not."""
    assert [str(p) for p in check(db)] == []


def test_each_example_is_its_signatures_top_diagnosis_end_to_end(db, host):
    """Through the whole pipeline, code matchers included: the example's first diagnosis is the signature."""
    wrong = []
    for s in db.signatures:
        for i, ex in enumerate(s.examples, 1):
            report = diagnose_text(ex["log"], host=host)
            top = report.diagnoses[0].signature_id if report.diagnoses else None
            if top != s.id:
                wrong.append(f"{s.id} example {i} -> {top}")
    assert wrong == []


def test_counter_examples_never_yield_their_signature(db, host):
    wrong = []
    for s in db.signatures:
        for i, ex in enumerate(s.counter_examples, 1):
            ids = [d.signature_id for d in diagnose_text(ex["log"], host=host).diagnoses]
            if s.id in ids:
                wrong.append(f"{s.id} counter-example {i}")
    assert wrong == []


@pytest.mark.parametrize("line", [
    "                    WARNING  no regularization images / 正則化画像が見つかりませんでした              train_util.py:2167",
    "The following values were not passed to `accelerate launch` and had defaults used instead:",
    "\t`--num_processes` was set to a value of `1`",
    "To avoid this warning pass in values for each of the problematic parameters or run `accelerate config`.",
    "WARNING clip_skip will be unexpected / SDXL学習ではclip_skipは動作しません sdxl_train_util.py:352",
    "Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'.",
    "steps: 100%|██████████| 2/2 [00:03<00:00,  1.91s/it, avr_loss=1.16]",
    "                    INFO     load tokenizer from cache:                                              strategy_base.py:61",
    "UserWarning: The installed version of bitsandbytes was compiled without GPU support. 8-bit optimizers, "
    "8-bit multiplication, and GPU quantization are unavailable.",
    "A module that was compiled using NumPy 1.x cannot be run in",
    "WARNING[XFORMERS]: xFormers can't load C++/CUDA extensions. xFormers was built for:",
])
def test_warnings_of_successful_runs_are_not_diagnosed(host, line):
    assert [d.signature_id for d in diagnose_text(line + "\n", host=host).diagnoses] == []


def _starts_with_literal(items) -> bool:
    try:
        from re import _constants as c
    except ImportError:  # Python 3.10
        import sre_constants as c
    if not items:
        return False
    op, av = items[0]
    if op is c.LITERAL:
        return True
    if op is c.SUBPATTERN:
        return _starts_with_literal(list(av[-1]))
    if op is c.BRANCH:
        return all(_starts_with_literal(list(b)) for b in av[1])
    return False


def test_line_regexes_stay_cheap_on_gigabyte_logs(db):
    """Each line regex of the database is skipped by the word filter on big chunks (it names words
    a chunk must hold) or starts with a literal (re finds it with a fast scan): `\\b`, `^` + classes,
    or `(?:^|…)` first make it walk every position of a gigabyte log."""
    try:
        from re import _parser as sre_parse
    except ImportError:  # Python 3.10
        import sre_parse
    from lora_doctor.diagnose.match import _NOTABLE_RX
    from lora_doctor.diagnose.signatures import required_words

    slow = [rx.pattern for rx in db.log_patterns() + list(_NOTABLE_RX.values())
            if required_words(rx) is None and not _starts_with_literal(list(sre_parse.parse(rx.pattern)))]
    assert slow == []


_SAMPLE_VALUES = {"absolute_path": "/data/img/10_cat/a.png", "npz_path": "/data/img/10_cat/a.npz",
                  "file": "/data/dataset.toml", "config_path": "/data/config.toml", "name": "cosine",
                  "optimizer_type": "adamw9bit", "resolution": "(512, 512, 512)"}


def _user_facing_messages() -> list[dict]:
    from lora_doctor.diagnose.explain import catalogue, user_facing

    messages = catalogue()["messages"]
    if not messages:
        pytest.skip("no sd-scripts message catalogue")
    return [m for m in messages if user_facing(m)]


def _as_printed(m: dict) -> str:
    text = re.sub(r"\{(\w+)[^}]*\}", lambda g: _SAMPLE_VALUES.get(g.group(1), "12"), m["message"])
    if m["kind"] == "log":
        return f"2024-01-01 00:00:00 ERROR    {text}\n"
    return (f"Traceback (most recent call last):\n  File \"/sd-scripts/{m['file']}\", line {m['line']}, in "
            f"{m['function']}\n    raise\n{m['exception'] or 'Exception'}: {text}\n")


def test_most_user_facing_sd_scripts_messages_name_a_cause(host):
    """Each message as sd-scripts prints it, alone: at least 60 % get a cause (the rest are listed)."""
    messages = _user_facing_messages()
    unmapped = [f"{m['id']} {m['file']}: {m['message'][:80]}" for m in messages
                if not diagnose_text(_as_printed(m), host=host).diagnoses]
    share = 1 - len(unmapped) / len(messages)
    print(f"\nsd-scripts user-facing messages naming a cause: {len(messages) - len(unmapped)}/{len(messages)} "
          f"({100 * share:.0f} %); without one:\n  " + "\n  ".join(unmapped))
    assert share >= 0.6, unmapped
