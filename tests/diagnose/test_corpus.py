"""Accuracy on the labelled corpus: real users' logs and complete logs of real sd-scripts runs.

Every case's top diagnosis must be its labelled cause (or one of `also_ok`); `unknown` and `none`
cases must get no diagnosis at all. Run with -s to see the accuracy per family.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from lora_doctor.launch.command import parse_command
from lora_doctor.diagnose.match import diagnose_text, load_signatures
from support import DATA, cause_ids, run_cli

CORPUS = DATA / "corpus"
FILES = ("real-issues.dev.jsonl", "sdscripts-runs.dev.jsonl")
# Logs whose lines are the same for two causes; only the command's folder tells them apart
# (`lora-doctor run` has it). Log alone they get the other reading, named here.
NEEDS_COMMAND = {"h4_train_data_dir_not_found": "dataset.train_data_dir_not_parent"}


def cases() -> list[dict]:
    out = []
    for name in FILES:
        for line in (CORPUS / name).read_text("utf-8").splitlines():
            if line.strip():
                out.append(dict(json.loads(line), file=name))
    return out


@pytest.fixture(scope="module")
def host():
    return load_signatures()[1]


def verdict(case: dict, ids: list[str]) -> bool:
    if case["cause"] in ("unknown", "none"):
        return ids == []
    return bool(ids) and (ids[0] == case["cause"] or ids[0] in case.get("also_ok", []))


def table(results: list[tuple[dict, list[str], bool]]) -> str:
    fam = defaultdict(lambda: [0, 0])
    for case, _, ok in results:
        f = case["cause"].split(".")[0]
        fam[f][0] += ok
        fam[f][1] += 1
    rows = [f"  {f:<12} {ok:>3}/{n:<3} {100 * ok / n:5.1f}%" for f, (ok, n) in sorted(fam.items())]
    ok = sum(r[2] for r in results)
    rows.append(f"  {'TOTAL':<12} {ok:>3}/{len(results):<3} {100 * ok / len(results):5.1f}%")
    misses = [f"  {c['id']}: want {c['cause']}, got {ids[:3] or 'no diagnosis'}" for c, ids, good in results
              if not good]
    return "\n".join(["accuracy per family:", *rows, *(["misses:", *misses] if misses else [])])


def run_corpus(host, with_command: bool):
    results = []
    for case in cases():
        launch = parse_command(case["command"]) if with_command and case.get("command") else None
        report = diagnose_text(case["log"], exit_code=case.get("exit_code"), launch=launch, host=host)
        ids = [d.signature_id for d in report.diagnoses]
        results.append((case, ids, verdict(case, ids)))
    return results


def test_every_corpus_file_has_cases_and_every_label_is_a_cause():
    causes = set(cause_ids())
    all_cases = cases() + [dict(json.loads(line), file=path.name) for path in sorted(CORPUS.glob("*.jsonl"))
                           if path.name not in FILES for line in path.read_text("utf-8").splitlines() if line.strip()]
    assert {c["file"] for c in all_cases} >= set(FILES)
    for name in {c["file"] for c in all_cases}:
        assert any(c["file"] == name for c in all_cases), f"{name} has no case"
    ids = [c["id"] for c in all_cases]
    assert len(ids) == len(set(ids)), "a case id used twice"
    for c in all_cases:
        for cause in [c["cause"], *c.get("also_ok", [])]:
            assert cause in causes, c["id"]


def test_every_case_gets_its_labelled_cause(host):
    """As after `lora-doctor run`: the log, its exit code, and the command when the case has one."""
    results = run_corpus(host, with_command=True)
    report = table(results)
    print("\n" + report)
    assert all(ok for _, _, ok in results), report


def test_log_alone_gives_the_same_answers_except_where_only_the_folder_can_tell(host):
    """As `lora-doctor diagnose LOG` on a pasted log: no command, so no look at the dataset folder."""
    results = run_corpus(host, with_command=False)
    print("\n(log only) " + table(results))
    for case, ids, ok in results:
        if case["id"] in NEEDS_COMMAND:
            assert ids[:1] == [NEEDS_COMMAND[case["id"]]], case["id"]
        else:
            assert ok, f"{case['id']}: want {case['cause']}, got {ids[:3]}"


@pytest.mark.parametrize("case_id", ["sd1972-sdxl-weights-into-sd15-unet-jp", "p1_lr_too_high_nan",
                                     "baseline", "bk2843-exit-3221225477-sdxl-dreambooth"])
def test_the_cli_agrees(tmp_path, isolated_env, case_id):
    """`lora-doctor diagnose --json LOG`: a real subprocess on a few cases, with its exit code."""
    case = next(c for c in cases() if c["id"] == case_id)
    log = tmp_path / "train.log"
    log.write_text(case["log"], encoding="utf-8")
    args = ["diagnose", "--json", str(log)]
    if case.get("exit_code") is not None:
        args += ["--exit-code", str(case["exit_code"])]
    proc = run_cli(args, env=isolated_env)
    out = json.loads(proc.stdout)
    ids = [d["id"] for d in out["diagnoses"]]
    assert verdict(case, ids), (case_id, ids)
    if case["cause"] not in ("unknown", "none"):
        assert proc.returncode == 0
        assert out["diagnoses"][0]["fix"] and out["diagnoses"][0]["why"]
