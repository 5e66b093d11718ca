"""Every `lora-doctor …` example the help and the docs show is run, and its arguments parse.

The examples come from `lora-doctor --help` and each command's `-h` (their `examples:` sections), and
from README.md and docs/*.md (code blocks and inline code). Each runs in-process in an isolated folder
that holds the files the examples name (a log, a signature file, a dataset …), offline, with the probe
answered at once and no training launched. An example passes when it is not a usage error (exit code 2)
— unless it shows one. Synopses (`[--python PATH]`, `DIR`, `LOG`, `a | b`) are not examples.
"""

from __future__ import annotations

import io
import os
import re
import shlex
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from support import ROOT

# An all-capitals word is a placeholder of a synopsis (DIR, LOG, RUN_A, ID, PATH, M, FILE…).
PLACEHOLDER = re.compile(r"^-{0,2}[\w-]*=?[A-Z][A-Z_]*(…|\.\.\.)?$")
WINDOWS_PATH = re.compile(r"\b[A-Za-z]:\\|\\\w")


def _help_texts() -> dict[str, str]:
    from lora_doctor.cli import COMMANDS, OVERVIEW, build_parser

    parser = build_parser()
    texts = {"lora-doctor --help": parser.format_help(), "lora-doctor (overview)": OVERVIEW}
    for name in COMMANDS:
        texts[f"lora-doctor {name} -h"] = parser.commands[name].format_help()
    return texts


def _doc_texts() -> dict[str, str]:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return {str(p.relative_to(ROOT)): p.read_text("utf-8") for p in files}


def _candidates(source: str, text: str):
    """(source, example text) for every `lora-doctor …` line of a help text or a Markdown file."""
    if source.endswith(".md"):
        in_block = False
        lines = text.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            if line.lstrip().startswith("```"):
                in_block = not in_block
            elif in_block:
                joined = line
                while joined.rstrip().endswith("\\") and i + 1 < len(lines):  # `\` continuation
                    i += 1
                    joined = joined.rstrip()[:-1].rstrip() + " " + lines[i].strip()
                m = re.search(r"(?:^|\$ |\| )\s*(lora-doctor(?: .*)?)$", joined.strip())
                if m:
                    yield m.group(1)
            else:
                for span in re.findall(r"`(lora-doctor [^`]*)`", line):
                    if span.split()[1:] not in (["run"], ["diagnose"], ["errors"], ["dataset"]):
                        yield span  # (those need arguments: in a sentence they name the command)
            i += 1
        return
    for line in text.splitlines():
        m = re.match(r"\s*(lora-doctor (?:-|[a-z]).*)$", line)
        if m:
            yield m.group(1)


def _clean(example: str) -> str:
    example = re.split(r"\s#\s", example)[0]  # a shell comment
    example = re.split(r"\s{2,}", example.strip())[0]  # `   (Windows; …)`, `   name the cause …`
    example = re.split(r"\s\|\s", example)[0]  # `… | head -1`
    return example.strip()


def examples() -> list[tuple[str, str]]:
    found: dict[str, str] = {}
    for source, text in {**_help_texts(), **_doc_texts()}.items():
        for raw in _candidates(source, text):
            example = _clean(raw)
            if example and example not in found:
                found[example] = source
    return [(source, example) for example, source in found.items()]


def argv_of(example: str) -> tuple[list[str] | None, str | None]:
    """The arguments after `lora-doctor`, and a file to feed as stdin; None for a synopsis."""
    stdin = None
    m = re.search(r"\s<\s+(\S+)\s*$", example)
    if m:
        stdin, example = m.group(1), example[:m.start()]
    example = re.sub(r"\s>\s+\S+\s*$", "", example)  # `> report.md`
    try:
        words = shlex.split(example, posix=not WINDOWS_PATH.search(example))
    except ValueError:
        return None, None
    if len(words) == 3 and words[2] in ("…", "..."):  # `lora-doctor dataset …`: a command's name
        return None, None
    words = [w.strip('"') for w in words[1:] if w not in ("…", "...")]
    if any(c in " ".join(words) for c in "[]|{}<>") or any(PLACEHOLDER.match(w) for w in words):
        return None, None
    if words and words[-1] == "--":  # `run -- …`: any training command
        words += ["accelerate", "launch", "train_network.py"]
    return words, stdin


ALL = examples()
RUNNABLE = [(s, e) for s, e in ALL if argv_of(e)[0] is not None]


def test_the_examples_were_found():
    sources = {s for s, _ in RUNNABLE}
    assert len(RUNNABLE) >= 30, RUNNABLE
    assert {"README.md", "docs/env.md", "lora-doctor env -h", "lora-doctor --help"} <= sources
    assert any("--only gpu" in e for _, e in RUNNABLE)  # `env -h`'s example that used to fail


LOG = """\
Traceback (most recent call last):
  File "train_network.py", line 1, in <module>
RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB
"""
SIGNATURE = """\
[[signature]]
id = "local.nas_offline"
title = "The dataset share is not mounted"
severity = "error"
why = "The training images live on a network share that was not mounted when training started."
fix = ["Mount the share (`mount /mnt/nas`) and start again."]

[signature.match]
log_any = ['No such file or directory: .?/mnt/nas/']

[[signature.examples]]
log = "FileNotFoundError: [Errno 2] No such file or directory: '/mnt/nas/lineart/1_x/a.png'"
"""


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """The isolated folder and environment every example runs in, holding what they name."""
    home = tmp_path / "home"
    work = tmp_path / "work"
    for folder in (home, work / "train" / "10_lineart", work / "my_plugins", work / "my_signatures",
                   work / "lora-plugins", home / "lora-plugins", home / ".config" / "lora-doctor" / "plugins"):
        folder.mkdir(parents=True, exist_ok=True)
    (work / "train.log").write_text(LOG)
    for path in (work / "my_errors.toml", work / "my_signatures" / "mine.toml", home / "lora-plugins" / "mine.toml",
                 home / ".config" / "lora-doctor" / "plugins" / "my_errors.toml"):
        path.write_text(SIGNATURE)
    (work / "dataset.toml").write_text('[[datasets]]\n[[datasets.subsets]]\nimage_dir = "train/10_lineart"\n')
    (work / "my_lora.toml").write_text('network_module = "networks.lora"\n')
    for key in [k for k in os.environ if k.startswith(("HF_", "HUGGING", "LORA_DOCTOR_PLUGIN"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(work)

    from lora_doctor.target import probe

    monkeypatch.setattr(probe, "run_probe", lambda python, *a, **k: probe.complete_facts({}, python))
    from lora_doctor.run import runner

    launched = []

    def no_launch(*args, **kwargs):  # nothing is trained: the launch is where parsing has long ended
        launched.append(args)
        raise SystemExit(0)

    for name in ("run", "run_child", "Runner"):
        if hasattr(runner, name):
            monkeypatch.setattr(runner, name, no_launch)
    return home, work


def record_history(work: Path) -> None:
    """Twelve recorded runs, failed and successful, for `history show last`, `diff 12`, `report --last`."""
    import time

    from lora_doctor.history.store import record_run

    now = time.time()
    for i in range(12):
        code = 1 if i % 2 else 0
        record_run({"started_at": now - 600 + i * 30, "ended_at": now - 590 + i * 30, "script": "train_network.py",
                    "argv": ["accelerate", "launch", "train_network.py", "--output_dir", "out"],
                    "options": {"output_dir": "out"}, "cwd": str(work), "exit_code": code,
                    "exit_cause": f"exited with code {code}", "facts": {}, "dataset_dirs": [],
                    "log_path": str(work / "train.log"), "report_path": None})


def run_example(argv: list[str], stdin: str | None, home: Path) -> tuple[int, str]:
    from lora_doctor.cli import main

    argv = [os.path.expanduser(w).replace("~", str(home), 1) if w.startswith("~") else w for w in argv]
    out, err = io.StringIO(), io.StringIO()
    old_stdin = sys.stdin
    sys.stdin = open(stdin) if stdin else io.StringIO("")
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 0
    finally:
        if sys.stdin is not old_stdin:
            sys.stdin.close()
        sys.stdin = old_stdin
    return code, err.getvalue()


def windows_stand_in(word: str) -> str:
    """What a Windows path of an example stands for on this machine: a python, or the dataset folder."""
    return sys.executable if word.lower().endswith("python.exe") else "train"


@pytest.mark.parametrize("source, example", RUNNABLE, ids=[e[:70] for _, e in RUNNABLE])
def test_example_parses(source, example, workspace):
    home, _ = workspace
    argv, stdin = argv_of(example)
    if argv and argv[0] in ("history", "diff", "report"):
        record_history(workspace[1])
    if "-" in argv and stdin is None:  # `some-command 2>&1 | lora-doctor diagnose -`: a log on stdin
        stdin = "train.log"
    if os.name != "nt":  # `C:\sd-scripts\venv\Scripts\python.exe`: the same option with a path of this machine
        argv = [windows_stand_in(w) if WINDOWS_PATH.search(w) else w for w in argv]
    code, err = run_example(argv, stdin, home)
    assert code != 2, f"{source}: `{example}` is a usage error: {err.strip()}"


def test_the_examples_cover_every_command():
    from lora_doctor.cli import COMMANDS

    shown = {argv_of(e)[0][0] for _, e in RUNNABLE if argv_of(e)[0]}
    assert set(COMMANDS) <= shown


def test_readme_test_command_is_what_ci_runs():
    readme = (ROOT / "README.md").read_text("utf-8")
    command = next(line for line in readme.splitlines() if "pytest" in line and line.startswith("python3 -m venv"))
    ci = (ROOT / ".ci" / "run").read_text("utf-8").replace(" -q ", " ")  # CI installs quietly
    for step in command.split(" && "):
        assert step.removesuffix(" -q") in ci, step


def test_windows_setup_commands_avoid_what_powershell_5_and_cmd_lack():
    readme = (ROOT / "README.md").read_text("utf-8")
    block = readme.split("```powershell", 1)[1].split("```", 1)[0]
    lines = [ln for ln in block.splitlines() if ln.strip()]
    assert lines == ["py -m venv .venv", ".venv\\Scripts\\python -m pip install .", ".venv\\Scripts\\lora-doctor env"]
    assert "&&" not in block and "python3" not in block
    assert "pipx install ." in readme
