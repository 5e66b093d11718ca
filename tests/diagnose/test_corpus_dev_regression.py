"""Regression guard on real-issues-2.dev.jsonl: real users' logs, but NOT a blind score.

The 60 cases (57 with a known cause, 3 unknown) are logs users pasted into issue threads: fragments,
one-line pastes, markdown damage, GUI timestamps, Windows. They were read while the signatures were
written (issue 11: 29/57 before, 54/57 after), so passing here says the fixes hold, not how the
database does on logs nobody has seen. Each case must get its labelled cause (or one of `also_ok`)
except the known misses below, and the unknown ones no diagnosis at all. Run with -s for the table.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from lora_doctor.diagnose.match import diagnose_text, load_signatures
from support import DATA

FILE = DATA / "corpus" / "real-issues-2.dev.jsonl"
BAR = 54  # labelled causes right, of 57; raise it when a fix adds one, never lower it silently

# What the log alone cannot tell, or where the label and the log disagree; the doctor must not guess.
KNOWN_MISSES = {
    # A bare "UnicodeDecodeError: 'utf-8' codec can't decode byte 0xbd in position 0" with no frame and no
    # other line: captions, the sample prompts, the config file and the dataset TOML all print it.
    "bk1752-sample-prompts-chinese": "one bare line that four causes print",
    # "model is not found as a file or in Hugging Face: runwayml/stable-diffusion-v1-5": the thread was a
    # Hub outage in 2023; since the repo was deleted in 2024 the same line today means the repo is gone.
    "bk747-hf-hub-outage-model-not-found": "the same line means the 2024 removal today",
    # "No caption file found for 66 images" for all 66: also printed by DreamBooth runs without captions
    # on purpose (real-issues' bk2843 is such an unknown); only the folder (lora-doctor run) tells.
    "bk988-no-caption-file-found-txt": "needs the dataset folder",
}


def cases() -> list[dict]:
    return [json.loads(line) for line in FILE.read_text("utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def results():
    host = load_signatures()[1]
    return [(c, [d.signature_id for d in diagnose_text(c["log"], host=host).diagnoses]) for c in cases()]


def ok(case: dict, ids: list[str]) -> bool:
    if case["cause"] in ("unknown", "none"):
        return ids == []
    return bool(ids) and (ids[0] == case["cause"] or ids[0] in case.get("also_ok", []))


def test_known_misses_are_cases_of_the_file():
    assert set(KNOWN_MISSES) <= {c["id"] for c in cases()}


def test_every_case_but_the_known_misses_gets_its_cause(results):
    wrong = [f"{c['id']}: want {c['cause']}, got {ids[:3] or 'no diagnosis'}" for c, ids in results
             if c["id"] not in KNOWN_MISSES and not ok(c, ids)]
    assert wrong == []


def test_score_bar_and_no_made_up_diagnosis(results):
    fam = defaultdict(lambda: [0, 0])
    false = 0
    for c, ids in results:
        if c["cause"] in ("unknown", "none"):
            false += bool(ids)
            continue
        f = fam[c["cause"].split(".")[0]]
        f[0] += ok(c, ids)
        f[1] += 1
    right, total = sum(v[0] for v in fam.values()), sum(v[1] for v in fam.values())
    print("\nreal-issues-2 (dev logs, fitted), accuracy per family:")
    for name, (good, n) in sorted(fam.items()):
        print(f"  {name:<12} {good:>3}/{n}")
    print(f"  {'causes':<12} {right:>3}/{total}; false diagnoses on unknown/none: {false}")
    assert false == 0
    assert right >= BAR
