#!/usr/bin/env python3
"""Do the tests notice when a promise breaks? Apply one-line mutations to a copy of the repository
and run the tests that should catch each; report the mutations that SURVIVE (the tests still pass).

    .venv/bin/python tools/mutation_check.py            # every mutation
    .venv/bin/python tools/mutation_check.py -k diff     # those whose name contains "diff"
    .venv/bin/python tools/mutation_check.py --list

Each mutation is a text substitution (old -> new, each `old` found exactly once) in one source file.
The working tree is never touched: the repository (as it is on disk, uncommitted changes included;
not .git, .venv) is copied to a temporary folder, and the tests run there with PYTHONPATH pointing at
the copy (lora_doctor.plugins and .known_errors are linked inside the copied package, as the
installed wheel has them). A mutation whose text is no longer in the file is reported STALE: the
code moved, update its entry here. Exit code: 0 every mutation killed, 1 one survived or is stale,
2 the copy does not import from itself.

A test that builds its subprocess environment from scratch (without PYTHONPATH) would run the
working tree's code instead; such a mutation reports SURVIVED, so a survivor is worth a look at
the test as well as the code.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # relative to the repository root
    edits: tuple[tuple[str, str], ...]  # (old, new), each old found exactly once
    tests: tuple[str, ...]  # test files, folders or globs (expanded in the copy: new test files count)
    why: str = ""


MUTATIONS = (
    Mutation(
        "history stores secret option values (name-based redaction off)",
        "lora_doctor/history/store.py",
        (("if is_secret_option(str(name)) and value is not True:",
          "if False and is_secret_option(str(name)) and value is not True:"),),
        ("tests/history/",),
        "a --wandb_api_key value must never reach the history database"),
    Mutation(
        "a crash while explaining a failed run changes run's exit code",
        "lora_doctor/commands/run.py",
        (("except Exception as exc:  # the explanation must never change the exit code",
          "except ZeroDivisionError as exc:  # the explanation must never change the exit code"),
         ("except Exception as exc:  # noqa: BLE001 - the report and the history still get written",
          "except ZeroDivisionError as exc:  # noqa: BLE001 - the report and the history still get written")),
        ("tests/run/test_run*.py", "tests/run/test_postmortem*.py"),
        "run returns the training's exit code whatever the post-mortem does"),
    Mutation(
        '"image too large" needs both sides over the resolution',
        "lora_doctor/dataset/findings.py",
        (("large = [i for i in usable if i.width > w or i.height > h]",
          "large = [i for i in usable if i.width > w and i.height > h]"),),
        ("tests/dataset/",),
        "sd-scripts asserts when either side is larger"),
    Mutation(
        '--random_crop\'s "too small" needs both sides under the resolution',
        "lora_doctor/dataset/findings.py",
        (("small = [i for i in usable if i.width < w or i.height < h]",
          "small = [i for i in usable if i.width < w and i.height < h]"),),
        ("tests/dataset/",),
        "random_crop fails when either side is smaller"),
    Mutation(
        "the ranking ignores whether a match sits on the root failure",
        "lora_doctor/diagnose/match.py",
        (("key=lambda m: (m.sig.priority, m.on_root, m.specificity)",
          "key=lambda m: (m.sig.priority, True, m.specificity)"),
         ("ranked.append(((m.sig.priority, m.on_root, d.confidence), d))",
          "ranked.append(((m.sig.priority, True, d.confidence), d))")),
        ("tests/diagnose/test_match*.py", "tests/diagnose/test_rank*.py", "tests/diagnose/test_signature_forms.py"),
        "an error on the root failure's chain outranks a line elsewhere in the log"),
    Mutation(
        "the caption re-encoding fix always decodes as cp932",
        "lora_doctor/dataset/caption_findings.py",
        (("by_enc.setdefault(c.encoding, []).append(c.path)",
          'by_enc.setdefault("cp932", []).append(c.path)'),),
        ("tests/dataset/test_dataset_caption*.py",),
        "a GBK or cp1252 caption converted as Shift-JIS is garbage"),
    Mutation(
        "the token-format warning for odd characters is off",
        "lora_doctor/hub/token.py",
        (('elif not re.fullmatch(r"hf_[A-Za-z0-9]+", token) and not re.search(r"\\s", token):',
          'elif False and not re.fullmatch(r"hf_[A-Za-z0-9]+", token) and not re.search(r"\\s", token):'),),
        ("tests/hub/",),
        "hf_ tokens are letters and digits only"),
    Mutation(
        "the token-format warning for a token a few characters short is off",
        "lora_doctor/hub/token.py",
        (("elif len(token) < USUAL_LENGTH:", "elif False and len(token) < USUAL_LENGTH:"),),
        ("tests/hub/",),
        "a token cut off when pasted"),
    Mutation(
        "diff calls a downgrade an upgrade",
        "lora_doctor/history/diff.py",
        (('return "upgraded" if vn > vo else "downgraded"', 'return "upgraded" if vn != vo else "downgraded"'),),
        ("tests/history/",),
        "torch 2.4 after 2.5 is a downgrade"),
    Mutation(
        "diff does not report removed options",
        "lora_doctor/history/diff.py",
        (("    for name in oa:\n        if name not in ob:\n",
          "    for name in oa:\n        if False and name not in ob:\n"),),
        ("tests/history/",),
        "an option dropped since the last good run is often the cause"),
    Mutation(
        "the probe's default timeout is 600 s instead of 60 s",
        "lora_doctor/target/probe.py",
        (("DEFAULT_TIMEOUT = 60.0", "DEFAULT_TIMEOUT = 600.0"),),
        ("tests/target/test_probe*.py", "tests/target/test_*timeout*.py"),
        "a hung interpreter must not hold `env` for ten minutes"),
)

IGNORE = shutil.ignore_patterns(".git", ".venv", "venv", "__pycache__", "*.egg-info", ".pytest_cache", "build",
                                "dist", ".mypy_cache", ".ruff_cache")


def make_copy(base: Path) -> Path:
    repo = base / "repo"
    shutil.copytree(ROOT, repo, ignore=IGNORE, symlinks=True)
    for sub, target in (("plugins", "plugins"), ("known_errors", "known_errors")):
        link = repo / "lora_doctor" / sub
        if not link.exists():
            link.symlink_to(Path("..") / target, target_is_directory=True)
    return repo


def environment(repo: Path) -> dict:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(repo), str(repo / "tests"), *filter(None, [env.get("PYTHONPATH")])])
    return env


def imports_from_copy(python: str, repo: Path, env: dict) -> str:
    """'' when lora_doctor, its plugins and known errors import from the copy, else what did not."""
    code = ("import lora_doctor, lora_doctor.plugins, lora_doctor.known_errors as k, os;"
            "print(os.path.realpath(lora_doctor.__file__)); print(os.path.realpath(lora_doctor.plugins.__path__[0]));"
            "print(os.path.realpath(list(k.__path__)[0]))")
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, env=env, cwd=repo, timeout=120)
    real = os.path.realpath(repo)
    wrong = [line for line in out.stdout.splitlines() if not line.startswith(real)]
    return out.stderr.strip() if out.returncode else "; ".join(wrong)


def expand(repo: Path, tests) -> list[str]:
    """Test paths as pytest takes them; a glob becomes the files it matches now."""
    out: list[str] = []
    for t in tests:
        if any(ch in t for ch in "*?["):
            out += sorted(str(p.relative_to(repo)) for p in repo.glob(t))
        elif (repo / t.split("::")[0]).exists():
            out.append(t)
    return out


def run_tests(python: str, repo: Path, env: dict, tests, timeout: float) -> tuple[str, float, str]:
    """('pass' | 'fail' | 'timeout' | 'none', seconds, last lines of output)."""
    started = time.monotonic()
    paths = expand(repo, tests)
    if not paths:
        return "none", 0.0, "no test file matches " + " ".join(tests)
    try:
        out = subprocess.run([python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *paths],
                             capture_output=True, text=True, env=env, cwd=repo, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - started, ""
    tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-3:])
    return ("pass" if out.returncode == 0 else "fail"), time.monotonic() - started, tail


def apply(repo: Path, m: Mutation) -> tuple[str, str]:
    """(original text, '') after writing the mutated file, or ('', why it cannot be applied)."""
    path = repo / m.path
    try:
        original = path.read_text("utf-8")
    except OSError as exc:
        return "", f"cannot read {m.path}: {exc}"
    text = original
    for old, new in m.edits:
        n = text.count(old)
        if n != 1:
            return "", f"{m.path}: {'not found' if n == 0 else f'found {n} times'}: {old.strip()[:70]!r}"
        text = text.replace(old, new)
    path.write_text(text, "utf-8")
    return original, ""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-k", metavar="TEXT", help="only mutations whose name contains TEXT")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    ap.add_argument("--python", default=sys.executable, help="the interpreter with pytest and lora-doctor's "
                    "dependencies (default: this one)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per test run (default 900)")
    ap.add_argument("--no-baseline", action="store_true", help="skip running each test set unmutated first")
    ap.add_argument("--keep", action="store_true", help="keep the temporary copy")
    args = ap.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.k or args.k.lower() in m.name.lower()]
    if args.list:
        for m in chosen:
            print(f"- {m.name}\n    {m.path}; tests: {' '.join(m.tests)}")
        return 0
    if not chosen:
        print(f"no mutation matches {args.k!r} (see --list)", file=sys.stderr)
        return 2
    base = Path(tempfile.mkdtemp(prefix="lora-doctor-mutants-"))
    try:
        repo = make_copy(base)
        env = environment(repo)
        wrong = imports_from_copy(args.python, repo, env)
        if wrong:
            print(f"the copy does not import from itself ({wrong}); nothing tested", file=sys.stderr)
            return 2
        baseline: dict[tuple[str, ...], str] = {}
        if not args.no_baseline:
            for tests in dict.fromkeys(m.tests for m in chosen):
                status, seconds, tail = run_tests(args.python, repo, env, tests, args.timeout)
                baseline[tests] = status
                print(f"baseline {' '.join(tests)}: {status} ({seconds:.0f} s)" + (f"\n    {tail}" if status != "pass" else ""),
                      flush=True)
        results = []
        for m in chosen:
            if baseline.get(m.tests, "pass") != "pass":
                why = "no tests found" if baseline[m.tests] == "none" else "its tests fail without the mutation"
                results.append((m, "UNTESTED", why))
            else:
                original, problem = apply(repo, m)
                if problem:
                    results.append((m, "STALE", problem))
                else:
                    try:
                        status, seconds, tail = run_tests(args.python, repo, env, m.tests, args.timeout)
                    finally:
                        (repo / m.path).write_text(original, "utf-8")
                    verdict = {"pass": "SURVIVED", "fail": "killed", "timeout": "TIMEOUT", "none": "UNTESTED"}[status]
                    results.append((m, verdict, f"{seconds:.0f} s" + (f"; {tail.splitlines()[-1]}" if tail else "")))
            m_, verdict, note = results[-1]
            print(f"{verdict:>9}  {m_.name}  ({note})", flush=True)
        survivors = [r for r in results if r[1] != "killed"]
        print(f"\n{len(results) - len(survivors)} of {len(results)} mutations killed.")
        for m, verdict, note in survivors:
            print(f"  {verdict}: {m.name} [{m.path}] — {m.why}; tests: {' '.join(m.tests)}")
        return 1 if survivors else 0
    finally:
        if args.keep:
            print(f"copy kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
