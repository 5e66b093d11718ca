"""A token with a character Hugging Face tokens never contain (hf_ + letters and digits only) gets
the "odd characters" warning, whatever its length: a trailing `.` or `,` copied from a sentence, a
`;` from `export HF_TOKEN=…;`, a half-pasted quote, a markdown backtick. The Hub would reject it;
offline, this warning is the only sign. The token itself never appears in the output."""

from __future__ import annotations

import secrets
import string
from pathlib import Path

import pytest

from support import run_cli
from lora_doctor.hub import token as hf_auth

ODD = "contains characters that Hugging Face tokens never contain"


def new_token(n: int = 34) -> str:
    return "hf_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(n))


def flat(text: str) -> str:
    return " ".join(text.split())  # prose is wrapped at 100 columns in a pipe


def never_shown(proc, token: str) -> None:
    for stream in (proc.stdout, proc.stderr):
        assert token not in stream and token[3:-2] not in stream


PASTES = {  # what the paste did to the token
    "period": lambda t: t + ".",          # the end of a sentence
    "comma": lambda t: t + ",",
    "semicolon": lambda t: t + ";",       # export HF_TOKEN=hf_…;
    "one-quote": lambda t: t + '"',       # one quote of a pair
    "backtick": lambda t: t + "`",        # the end of markdown code
    "dash": lambda t: t[:20] + "-" + t[20:],
    "underscore": lambda t: t[:20] + "_" + t[21:],  # the usual length, one letter replaced
}


@pytest.mark.parametrize("paste", sorted(PASTES))
def test_an_odd_character_is_named_at_any_length(paste):
    for token in (new_token(), new_token(20)):  # the usual 37 characters, and one cut short
        raw = PASTES[paste](token)
        problems = hf_auth.format_problems(raw)
        assert [(p.severity, p.summary) for p in problems] == [("warn", ODD)], (raw, problems)
        assert "https://huggingface.co/settings/tokens" in problems[0].fix


def test_a_token_of_letters_and_digits_has_no_odd_character_warning():
    assert hf_auth.format_problems(new_token()) == []
    assert [p.summary for p in hf_auth.format_problems(new_token(20))] == [
        "is 23 characters long; Hugging Face tokens are usually 37 (hf_ + 34): probably cut off when pasted"]


def test_env_warns_about_a_token_file_ending_in_a_period_and_prints_the_login_fix(isolated_env):
    token = new_token()
    token_file = Path(isolated_env["HF_HOME"]) / "token"
    token_file.parent.mkdir(parents=True)
    token_file.write_text(token + ".\n")
    proc = run_cli(["env", "--offline", "--only", "auth.token"], env=isolated_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # a warning: the run may still work offline
    out = flat(proc.stdout)
    assert f"[!] Hugging Face token: the token from the token file {token_file} (hf_" in out
    assert f") {ODD} Fix: Copy the token again from https://huggingface.co/settings/tokens." in out
    assert "$ hf auth login --force" in proc.stdout
    assert "0 errors, 1 warning" in out
    never_shown(proc, token)


def test_env_warns_about_hf_token_with_a_trailing_semicolon_and_says_how_to_unset_it(isolated_env):
    token = new_token()
    proc = run_cli(["env", "--offline", "--only", "auth.token"], env=dict(isolated_env, HF_TOKEN=token + ";"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = flat(proc.stdout)
    assert f"[!] Hugging Face token: the token from the HF_TOKEN environment variable (hf_" in out
    assert f") {ODD} Fix:" in out
    assert "$ unset HF_TOKEN" in proc.stdout
    never_shown(proc, token)
