"""`lora-doctor errors list|show|test`: what a signature author sees."""

from __future__ import annotations

import json
import textwrap

import pytest

from support import DATA, run_cli

BASIC = DATA / "signatures" / "basic"


@pytest.fixture
def env(isolated_env):
    return isolated_env


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


GOOD = """
[[signature]]
id = "test.zork"
title = "The grue ate the latents"

[signature.match]
exception = ["ZorkError"]
message = 'grue'

why = "It is dark."
fix = ["Light a lamp."]

[[signature.examples]]
log = '''
Traceback (most recent call last):
  File "x.py", line 1, in f
ZorkError: the grue ate the latents
'''

[[signature.counter_examples]]
log = "ZorkError: a troll"
"""


def test_list_shows_id_title_and_file(env, tmp_path):
    write(tmp_path, "mine.toml", GOOD)
    result = run_cli(["errors", "list", "--plugin-dir", str(tmp_path)], env=env)
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("test.zork"))
    assert "The grue ate the latents" in line and "mine.toml:1" in line
    line = next(x for x in result.stdout.splitlines() if x.startswith("dataset.image_too_large_no_bucket"))
    assert "An image is larger than --resolution and bucketing is off" in line and "dataset.toml:" in line
    data = json.loads(run_cli(["errors", "list", "--json", "--plugin-dir", str(tmp_path)], env=env).stdout)
    assert any(s["id"] == "test.zork" for s in data["signatures"])


def test_a_user_file_cannot_replace_a_builtin_signature(env):
    """basic.toml reuses builtin ids: each is refused, and says so, instead of silently replacing it."""
    result = run_cli(["errors", "list", "--plugin-dir", str(BASIC)], env=env)
    line = next(x for x in result.stdout.splitlines() if x.startswith("dataset.image_too_large_no_bucket"))
    assert "dataset.toml:" in line and "basic.toml" not in line
    assert "duplicate id 'dataset.image_too_large_no_bucket'" in result.stderr
    assert "refused: a builtin signature has this id" in result.stderr
    tested = run_cli(["errors", "test", str(BASIC / "basic.toml")], env=env)
    assert tested.returncode == 1
    assert "id 'dataset.image_too_large_no_bucket' is a builtin signature's" in tested.stdout


def test_test_says_what_it_accepts(env, tmp_path):
    plugin = tmp_path / "x.py"
    plugin.write_text("from lora_doctor import hookimpl\n")
    result = run_cli(["errors", "test", str(plugin)], env=env)
    assert result.returncode == 2 and "not valid TOML" not in result.stderr
    assert ("x.py is not a signature file: `errors test` takes .toml signature files ([[signature]] tables, "
            "see docs/signatures.md) or folders of them (a .py plugin is checked by `lora-doctor plugins "
            "--plugin-dir FOLDER`)") in result.stderr


def test_show_and_unknown_id(env):
    result = run_cli(["errors", "show", "dataset.image_too_large_no_bucket", "--plugin-dir", str(BASIC)], env=env)
    assert result.returncode == 0
    assert "command edit: Change the command: add --enable_bucket." in result.stdout
    assert "1 example(s), 1 counter-example(s)" in result.stdout
    result = run_cli(["errors", "show", "nope.nothing"], env=env)
    assert result.returncode == 2 and "no signature with id 'nope.nothing'" in result.stderr


def test_test_passes_a_good_file(env, tmp_path):
    path = write(tmp_path, "good.toml", GOOD)
    result = run_cli(["errors", "test", str(path)], env=env)
    assert result.returncode == 0, result.stdout
    assert "✓ 1 signature(s), 2 example(s) checked: 0 problem(s)" in result.stdout


def test_test_reports_schema_errors_with_file_and_line(env, tmp_path):
    path = write(tmp_path, "bad.toml", """
        [[signature]]
        id = "Bad Id"
        title = "x"
        severity = "fatal"
        flavour = 1

        [signature.match]
        message = '(unclosed'
        fix = ["x"]
        """)
    result = run_cli(["errors", "test", str(path)], env=env)
    assert result.returncode == 1
    out = result.stdout
    assert f"{path}:2: id 'Bad Id' must look like family.name" in out
    assert f"{path}:4: severity 'fatal' must be one of error, warn, info" in out
    assert f"{path}:5: unknown key 'flavour'" in out
    assert f"{path}:7: match.message: regex '(unclosed' does not compile" in out


def test_test_reports_invalid_toml_with_line(env, tmp_path):
    path = write(tmp_path, "broken.toml", '[[signature]]\nid = "a.b"\ntitle = "unterminated\n')
    result = run_cli(["errors", "test", str(path)], env=env)
    assert result.returncode == 1 and f"{path}:3: not valid TOML" in result.stdout


def test_test_example_that_does_not_match_and_counter_example_that_does(env, tmp_path):
    text = GOOD.replace("ZorkError: the grue ate the latents", "ZorkError: a bat").replace(
        '"ZorkError: a troll"', '"ZorkError: grue again"')
    path = write(tmp_path, "wrong.toml", text)
    result = run_cli(["errors", "test", str(path)], env=env)
    assert result.returncode == 1
    assert "test.zork: example 1 does not match (the log's failure is ZorkError: 'a bat')" in result.stdout
    assert "test.zork: counter-example 1 matches, but must not" in result.stdout


def test_test_two_signatures_claiming_one_example_with_equal_rank(env, tmp_path):
    twin = GOOD.replace('id = "test.zork"', 'id = "test.zork_twin"')
    path = write(tmp_path, "twins.toml", GOOD + "\n" + twin)
    result = run_cli(["errors", "test", str(path)], env=env)
    assert result.returncode == 1
    assert "test.zork: example 1 is also claimed by test.zork_twin" in result.stdout
    path.write_text(textwrap.dedent(GOOD + "\n" + twin.replace('title = "The grue ate the latents"',
                                                               'title = "t"\npriority = 60')), encoding="utf-8")
    result = run_cli(["errors", "test", str(path)], env=env)
    assert "is also claimed" not in result.stdout


def test_test_refuses_a_catastrophic_regex_from_a_user_file(env, tmp_path):
    path = write(tmp_path, "evil.toml", GOOD.replace("message = 'grue'", "message = '(\\w+\\s?)+$'"))
    result = run_cli(["errors", "test", str(path)], env=env)
    assert result.returncode == 1 and "nests quantifiers" in result.stdout


def test_the_shipped_database_passes_its_own_test(env):
    result = run_cli(["errors", "test", "--json"], env=env, timeout=300)
    data = json.loads(result.stdout)
    assert data["signatures"] > 0
    assert result.returncode == (1 if data["problems"] else 0)


def test_usage(env, tmp_path):
    assert run_cli(["errors"], env=env).returncode == 2
    result = run_cli(["errors", "test", str(tmp_path / "nope.toml")], env=env)
    assert result.returncode == 2 and "no such file or folder" in result.stderr
