"""Real logs of the dev corpus, re-shaped the way users paste them (tests/diagnose/paste_forms.py),
must still name their labelled cause: one line, the message alone, lower-cased, markdown-quoted,
in a code fence, behind a front end's timestamps, machine-translated, with typographic quotes, a
GUI's verdict after it, a generic wrapper traceback after it, indentation or underscores lost; and
only accelerate's CalledProcessError carrying the command. Logs with no known cause stay without
a diagnosis in every form.
"""

from __future__ import annotations

import json
from functools import lru_cache

import pytest

import paste_forms as P
from support import DATA

CORPUS = DATA / "corpus"
R1, R2, RUNS = "real-issues.dev.jsonl", "real-issues-2.dev.jsonl", "sdscripts-runs.dev.jsonl"

# a traceback of each shape: plain, chained, rich box, sd-scripts' assertion, a localized OS error
STRUCTURE_CASES = [
    (R2, "bk93-bf16-unsupported"), (R2, "bk1692-bnb-paths-missing-finetune"), (R2, "bk2701-flux-te-cache-with-te-training"),
    (R2, "bk3139-no-module-xformers-linux"), (R2, "bk1087-resolution-768x768"), (R2, "bk332-winerror1455-french"),
    (R1, "kt130-lycoris-network-args-not-list"), (R1, "sd1759-sample-prompt-edited-te-cache"),
    (RUNS, "a1_image_too_large_no_bucket"), (RUNS, "q1_transformers_5_24_0"), (RUNS, "n1_output_dir_read_only_fs"),
]
STRUCTURE_FORMS = ["lower", "quoted", "fenced", "gui_prefixed", "time_prefixed", "translated_zh", "smart_quotes",
                   "gui_trailer", "then_wrapper", "flat", "markdown_eaten"]
# causes a message names on its own (no frame needed to tell them from another cause)
MESSAGE_CASES = [
    (R2, "bk93-bf16-unsupported"), (R2, "bk2701-flux-te-cache-with-te-training"), (R2, "bk2823-accelerate-config-tpu-use-cluster"),
    (R2, "bk3139-no-module-xformers-linux"), (R2, "bk564-accelerate-config-downcase-fp16"),
    (R2, "kc197-no-module-diffusers-torch-pin-gone"), (R2, "ls513-text-encoder-lr-float-no-len"),
    (R1, "sd1763-bucket-reso-steps-32-not-64"), (R1, "dd15-python38-list-annotation"),
    (RUNS, "s12_full_fp16_without_fp16"),
]
MESSAGE_FORMS = ["one_line", "message_only", "lower_message_only"]
NEGATIVE_CASES = [(R2, "bk2541-nan-latents-sd15-jpg"), (R2, "bk1691-sdxl-pipeline-missing-text-encoder"),
                  (R2, "ls247-only-calledprocesserror-pasted"), (RUNS, "baseline"), (RUNS, "i2_abbreviated_option_accepted"),
                  (RUNS, "o4_adamw8bit_bitsandbytes_cpu_only"), (RUNS, "d5_accelerate_bf16_on_cpu")]


@lru_cache(maxsize=None)
def case(name: str, case_id: str) -> dict:
    for line in (CORPUS / name).read_text("utf-8").splitlines():
        row = json.loads(line)
        if row["id"] == case_id:
            return row
    raise KeyError(case_id)


@lru_cache(maxsize=1)
def _db():
    from lora_doctor.diagnose.match import load_signatures

    return load_signatures()


def diagnose(text: str):
    from lora_doctor.diagnose.match import diagnose_text

    db, host = _db()
    return diagnose_text(text, host=host, db=db)


def top(text: str) -> str | None:
    ids = [d.signature_id for d in diagnose(text).diagnoses]
    return ids[0] if ids else None


def _right(row: dict, got: str | None) -> bool:
    return got == row["cause"] or got in row.get("also_ok", [])


@pytest.mark.parametrize("name,case_id", STRUCTURE_CASES)
def test_the_real_log_names_its_cause_as_it_is(name, case_id):
    row = case(name, case_id)
    assert _right(row, top(row["log"]))


@pytest.mark.parametrize("form", STRUCTURE_FORMS)
@pytest.mark.parametrize("name,case_id", STRUCTURE_CASES)
def test_pasted_forms_of_a_traceback_name_its_cause(form, name, case_id):
    row = case(name, case_id)
    text = P.FORMS[form](row["log"])
    assert _right(row, top(text)), f"{form} of {case_id}:\n{text[:1500]}"


@pytest.mark.parametrize("form", MESSAGE_FORMS)
@pytest.mark.parametrize("name,case_id", MESSAGE_CASES)
def test_a_message_alone_names_its_cause(form, name, case_id):
    row = case(name, case_id)
    text = P.FORMS[form](row["log"])
    assert text is not None
    assert _right(row, top(text)), f"{form} of {case_id}: {text!r}"


@pytest.mark.parametrize("form", STRUCTURE_FORMS)
@pytest.mark.parametrize("name,case_id", NEGATIVE_CASES)
def test_logs_without_a_known_cause_stay_undiagnosed_in_every_form(form, name, case_id):
    row = case(name, case_id)
    assert row["cause"] in ("none", "unknown")
    text = P.FORMS[form](row["log"])
    assert top(text) is None, f"{form} of {case_id}"


# -- only the wrapper: the command it carries is the evidence -------------------------------------
@pytest.mark.parametrize("case_id", ["s04_lr_scheduler_typo", "s12_full_fp16_without_fp16", "s07_network_args_bad_format"])
def test_only_accelerates_wrapper_the_command_is_checked(case_id):
    row = case(RUNS, case_id)
    report = diagnose(P.wrapper_only(row["command"], row["exit_code"]))
    assert report.command_from_log is not None
    assert report.diagnoses[0].signature_id == row["cause"]
    assert "the command the log printed" in report.diagnoses[0].evidence[0]


@pytest.mark.parametrize("case_id", ["baseline", "i2_abbreviated_option_accepted", "r2_dataset_config_ok",
                                     "o4_adamw8bit_bitsandbytes_cpu_only"])
def test_a_right_command_in_a_wrapper_is_no_diagnosis(case_id):
    row = case(RUNS, case_id)
    assert diagnose(P.wrapper_only(row["command"], 1)).diagnoses == []


def test_the_exit_status_must_fit_the_option_problem():
    """argparse exits 2, sd-scripts' own checks raise (1); a crash status is no option problem."""
    row = case(RUNS, "s04_lr_scheduler_typo")  # sd-scripts raises on the scheduler name: status 1
    crash = diagnose(P.wrapper_only(row["command"], 3221225477))
    assert crash.diagnoses == [] and crash.exit.ntstatus == "0xC0000005 access violation"
    assert diagnose(P.wrapper_only(row["command"], 2)).diagnoses == []


def test_a_gui_echo_with_an_absolute_path_to_accelerate_gives_the_command():
    """kohya_ss GUI: `Executing command: C:\\…\\venv\\Scripts\\accelerate.EXE launch …` before a log cut short."""
    row = case(RUNS, "s04_lr_scheduler_typo")
    from lora_doctor.launch.command import parse_command
    from lora_doctor.launch.edit import join

    launch = parse_command(row["command"])
    line = join(["accelerate", "launch", *launch.launcher_args, launch.script, *launch.script_args], "win32")
    for echo in ("14:20:31-772019 INFO     Executing command: " + line.replace("accelerate", "C:\\kohya_ss\\venv\\Scripts\\accelerate.EXE", 1),
                 '16:00:01-120 INFO     Executing command: "D:\\AI Tools\\kohya_ss\\venv\\Scripts\\accelerate.EXE"' + line[len("accelerate"):],
                 "user@box:~/sd-scripts$ /home/user/kohya_ss/venv/bin/" + line):
        report = diagnose(echo + "\nsubprocess.CalledProcessError: Command '['python', 'x.py']' returned non-zero exit status 1.\n")
        assert report.command_from_log is not None, echo
        assert report.command_from_log.options["lr_scheduler"] == "cosine_with_restart"
        assert report.diagnoses[0].signature_id == "args.invalid_choice"
        assert "--lr_scheduler=cosine_with_restarts" in report.diagnoses[0].fix_command


def test_a_quoted_windows_path_ending_in_a_backslash_swallows_the_next_options():
    """sd317's GUI echo, its folder written with a trailing backslash (`"…\\img\\"`): Windows reads `\\"`
    as a quote, so --resolution and the rest never reach the script."""
    row = case(R1, "sd317-win11-nccl-not-built-in")
    echo = next(x for x in row["log"].splitlines() if x.startswith("accelerate launch"))
    swallowing = echo.replace('/kohya_ss/images/img"', '\\kohya_ss\\images\\img\\"', 1)
    assert swallowing != echo
    report = diagnose(swallowing + "\nsubprocess.CalledProcessError: Command '[]' returned non-zero exit status 1.\n")
    d = report.diagnoses[0]
    assert d.signature_id == "args.trailing_backslash_escapes_quote"
    assert "--resolution" in d.title
    assert diagnose(echo + "\nsubprocess.CalledProcessError: Command '[]' returned non-zero exit status 1.\n").diagnoses == []


def test_a_resolution_written_wxh_in_the_wrapper_names_the_format():
    """bk1087's `768x768` in a command, when only the wrapper was pasted."""
    argv = [a if not a.startswith("--resolution") else "--resolution=768x768" for a in case(RUNS, "baseline")["command"]]
    report = diagnose(P.wrapper_only(argv, 1))
    assert report.diagnoses[0].signature_id == "args.resolution_format_invalid"
    assert "--resolution=768,768" in report.diagnoses[0].fix_command


def test_the_env_check_names_the_same_command_problems():
    """`lora-doctor env -- CMD` and the post-mortem run the same checks (plugins/sdscripts_args.py)."""
    from lora_doctor.launch.command import parse_command
    from lora_doctor.plugins.sdscripts_args import static_findings

    argv = [a if not a.startswith("--resolution") else "--resolution=768x768" for a in case(RUNS, "baseline")["command"]]
    causes = [f.cause for f in static_findings(parse_command(argv))]
    assert "args.resolution_format_invalid" in causes
    assert [f.cause for f in static_findings(parse_command(case(RUNS, "baseline")["command"])) if f.cause] == []
