"""The database generalises: other real shapes of every cause, failures no cause explains, clean runs.

`tests/data/variants/<cause-id>/*.log` are logs built from the exact message texts of sd-scripts
(2023 `print()` output to today's rich records, English and Japanese halves), accelerate, torch,
transformers, huggingface_hub and the kohya_ss GUI, in the shapes users paste them: Windows paths,
PowerShell and cmd, rich box-drawn tracebacks, `[rank0]:` prefixes, CalledProcessError and
ChildFailedError wrappers, only the last lines of a traceback, CRLF and ANSI colours.
Each must get its folder's cause as the top diagnosis; `unknown/` (real failures none of the causes
explains) and `none/` (successful runs with scary warnings) must get no diagnosis at all.
Run with -s to see the accuracy per family.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from lora_doctor.diagnose.match import diagnose_file, diagnose_text, load_signatures
from support import DATA, cause_ids

VARIANTS = DATA / "variants"
LOGS = sorted(VARIANTS.glob("*/*.log"))


@pytest.fixture(scope="module")
def host():
    return load_signatures()[1]


@pytest.fixture(scope="module")
def results(host):
    out = []
    for log in LOGS:
        report = diagnose_file(log, host=host)
        out.append((log.parent.name, log.name, [d.signature_id for d in report.diagnoses], report))
    return out


def _ok(cause: str, ids: list[str]) -> bool:
    return ids == [] if cause in ("unknown", "none") else ids[:1] == [cause]


def test_every_cause_has_two_variants_and_enough_negatives():
    by_cause = defaultdict(int)
    for log in LOGS:
        by_cause[log.parent.name] += 1
    assert set(by_cause) <= set(cause_ids()), "a variants folder that is not a cause id"
    thin = sorted(c for c in set(cause_ids()) - {"unknown", "none"} if by_cause[c] < 2)
    assert thin == [], "causes with fewer than 2 variant logs"
    assert by_cause["unknown"] >= 15 and by_cause["none"] >= 10


def test_each_variant_gets_its_cause_and_negatives_get_none(results):
    fam = defaultdict(lambda: [0, 0])
    misses = []
    for cause, name, ids, _ in results:
        ok = _ok(cause, ids)
        family = cause.split(".")[0]
        fam[family][0] += ok
        fam[family][1] += 1
        if not ok:
            misses.append(f"  {cause}/{name}: got {ids[:3] or 'no diagnosis'}")
    rows = [f"  {f:<12} {ok:>3}/{n:<3} {100 * ok / n:5.1f}%" for f, (ok, n) in sorted(fam.items())]
    total = sum(ok for ok, _ in fam.values())
    rows.append(f"  {'TOTAL':<12} {total:>3}/{len(results):<3}")
    print("\nvariants, accuracy per family:\n" + "\n".join(rows + misses))
    assert misses == [], "\n".join(misses)


def test_unknown_failures_are_still_reported_as_failures(results):
    """No diagnosis is not "nothing wrong": the failure itself is shown (exit code 1 of diagnose)."""
    for cause, name, _, report in results:
        if cause == "unknown":
            assert report.failed, name


def test_clean_runs_show_no_failure_at_all(results):
    """A clean run with scary warnings: `diagnose` says "No failure found" and exits 0."""
    for cause, name, _, report in results:
        if cause == "none":
            assert not report.failed, (name, [f"{f.exception}: {f.message[:80]}" for f in report.failures])


WRAPPER = ("Traceback (most recent call last):\n  File \"/venv/bin/accelerate\", line 8, in <module>\n"
           "    sys.exit(main())\nsubprocess.CalledProcessError: Command '['/venv/bin/python', "
           "'train_network.py']' returned non-zero exit status 1.\n")
SHAPES = {
    "every line prefixed [rank0]: (torch >= 2.4 multi-process)": lambda t: "".join("[rank0]: " + x for x in t.splitlines(True)),
    "pasted indented by 4 spaces": lambda t: "".join("    " + x for x in t.splitlines(True)),
    "accelerate's CalledProcessError after it": lambda t: t + WRAPPER,
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_the_same_log_in_another_shape_gets_the_same_answer(host, results, shape):
    """Every fourth variant, re-shaped the way logs reach users: the top diagnosis does not move."""
    moved = []
    for cause, name, ids, _ in results[::4]:
        text = (VARIANTS / cause / name).read_text("utf-8")
        if "[rank" in text and "rank" in shape or (cause == "none" and "CalledProcessError" in shape):
            continue  # prefixed twice is no real log; a clean run does not end in a crash
        got = [d.signature_id for d in diagnose_text(SHAPES[shape](text), host=host).diagnoses]
        if got[:1] != ids[:1]:
            moved.append(f"{cause}/{name}: {ids[:1]} -> {got[:2]}")
    assert moved == []
