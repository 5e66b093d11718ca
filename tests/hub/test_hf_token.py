"""auth.token: sources, precedence, format, whoami against a loopback Hub, exposure in history."""

from __future__ import annotations

import secrets
import string
import time
from pathlib import Path

import pytest

from support.hub_server import HubServer
from lora_doctor.hub import token as hf_auth
from lora_doctor.hub import shell_history as history_scan
from lora_doctor.launch.command import parse_command
from lora_doctor.context import build_context
from lora_doctor.host.doctor import run_checks
from lora_doctor.model import Check, Severity
from lora_doctor.plugins.hf_token import check_token


def new_token() -> str:
    return "hf_" + "".join(secrets.choice(string.ascii_letters) for _ in range(34))


def make_ctx(env, *, hub="2.4.0", platform="linux", offline=False, argv=None):
    facts = {"python": {"platform": platform}, "packages": {"huggingface_hub": hub}, "torch": {},
             "probe": {"ok": True}}
    launch = parse_command(argv) if argv else None
    return build_context(launch=launch, offline=offline, env=env, cwd=Path(env["HOME"]), facts=facts)


def findings(ctx):
    return list(check_token(ctx))


def worst(found):
    return max(found, key=lambda f: f.severity)


def assert_never_shown(found, token):
    for f in found:
        blob = " ".join([f.summary, f.detail, f.fix, f.fix_command, *map(str, f.facts.values())])
        assert token not in blob
        assert token[3:] not in blob


def write_token_file(env, token: str, text: str | None = None) -> Path:
    path = hf_auth.hf_paths(env).token_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text is not None else token)
    return path


# -- sources and precedence (offline) -------------------------------------------------------------

def test_empty_hf_token_falls_through_and_env_beats_the_token_file(isolated_env):
    file_token, env_token = new_token(), new_token()
    write_token_file(isolated_env, file_token)
    env = dict(isolated_env, HF_TOKEN="", HUGGING_FACE_HUB_TOKEN=env_token)
    sources = hf_auth.token_sources(env)
    assert [s.kind for s in sources] == ["env", "env", "file"]
    active = hf_auth.active_source(sources, env, (0, 34, 3))
    assert active.name == "HUGGING_FACE_HUB_TOKEN" and active.token == env_token
    found = findings(make_ctx(env, offline=True))
    assert any("HUGGING_FACE_HUB_TOKEN environment variable overrides the token file" in f.summary for f in found)
    assert_never_shown(found, env_token)
    assert_never_shown(found, file_token)


def test_hf_token_path_and_xdg_cache_are_honoured(isolated_env, tmp_path):
    env = {k: v for k, v in isolated_env.items() if k != "HF_HOME"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    assert hf_auth.hf_paths(env).token_file == tmp_path / "xdg" / "huggingface" / "token"
    env["HF_TOKEN_PATH"] = str(tmp_path / "elsewhere" / "tok")
    paths = hf_auth.hf_paths(env)
    assert paths.token_file == tmp_path / "elsewhere" / "tok"
    assert paths.stored_tokens == tmp_path / "elsewhere" / "stored_tokens"


def test_no_token_is_ok_and_says_how_to_log_in(isolated_env):
    found = findings(make_ctx(isolated_env, hub="0.34.3"))
    assert [f.severity for f in found] == [Severity.OK]
    assert "no Hugging Face token" in found[0].summary
    assert "`hf auth login`" in found[0].detail


@pytest.mark.parametrize("raw, severity, words", [
    ("hf_abc...wxyz", "error", "truncated"),
    ("hf_abcdefghij…UVWXYZ", "error", "truncated"),
    ('"hf_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh"', "error", "quotes"),
    ("hf_ABCDEFGHIJKLMNOP QRSTUVWXYZabcdefgh", "error", "space"),
    ("api_org_ABCDEFGHIJKLMNOPQRSTUVWXYZabcd", "error", "organization"),
    ("hf_ABCDEFGHIJKLMNOPQRSTUV", "warn", "usually 37"),
    ("ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh", "warn", "does not start with 'hf_'"),
    ("hf_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh\n", "info", "newline"),
    ("\ufeffhf_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh", "error", "byte-order mark"),
    ("hf_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh".encode("utf-16").decode("utf-8", "replace"), "error", "UTF-16"),
    ("hf_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefgh\u201d", "error", "non-ASCII"),
])
def test_format_problems(raw, severity, words):
    problems = hf_auth.format_problems(raw)
    assert problems and problems[0].severity == severity
    assert words in problems[0].summary


def test_a_well_formed_token_has_no_format_problem():
    assert hf_auth.format_problems(new_token()) == []


# -- seed trouble ❶: a truncated token, offline -----------------------------------------------------

def test_truncated_token_file_is_an_error_with_the_login_fix_and_no_network_when_offline(isolated_env):
    write_token_file(isolated_env, "hf_AbCd...wXyZ")
    with HubServer() as hub:
        env = dict(isolated_env, HF_ENDPOINT=hub.url)
        found = findings(make_ctx(env, offline=True))
    bad = worst(found)
    assert bad.severity == Severity.ERROR and "truncated" in bad.summary
    assert bad.cause == "auth.invalid_token"
    assert bad.fix_command == "hf auth login --force"
    assert any("validity not checked (--offline)" in f.summary for f in found)
    assert hub.requests == []


def test_hf_hub_offline_means_no_request_and_a_bad_token_only_warns(isolated_env):
    with HubServer() as hub:
        env = dict(isolated_env, HF_ENDPOINT=hub.url, HF_HUB_OFFLINE="1", HF_TOKEN="hf_AbCd...wXyZ")
        found = findings(make_ctx(env))
    assert hub.requests == []
    assert worst(found).severity == Severity.WARN
    assert any("validity not checked (HF_HUB_OFFLINE)" in f.summary for f in found)


# -- online: whoami against the loopback Hub --------------------------------------------------------

def test_valid_token_names_user_and_role(isolated_env):
    token = new_token()
    write_token_file(isolated_env, token)
    with HubServer(tokens={token: {"name": "alice", "role": "write"}}) as hub:
        found = findings(make_ctx(dict(isolated_env, HF_ENDPOINT=hub.url)))
    ok = [f for f in found if "valid" in f.summary]
    assert ok and ok[0].severity == Severity.OK
    assert "user alice, write token" in ok[0].summary
    assert ("GET", "/api/whoami-v2", True) in hub.requests
    assert_never_shown(found, token)


def test_fine_grained_token_explains_gated_permission(isolated_env):
    token = new_token()
    with HubServer(tokens={token: {"name": "bob", "role": "fineGrained"}}) as hub:
        found = findings(make_ctx(dict(isolated_env, HF_ENDPOINT=hub.url, HF_TOKEN=token)))
    ok = next(f for f in found if "is valid" in f.summary)
    assert "fine-grained" in ok.summary and "gated" in ok.detail


@pytest.mark.parametrize("hub_version, command", [
    ("0.25.0", "huggingface-cli login"), ("0.34.3", "hf auth login"), ("1.28.0", "hf auth login --force"),
])
def test_invalid_token_file_is_an_error_even_for_public_models(isolated_env, hub_version, command):
    token = new_token()
    write_token_file(isolated_env, token)
    with HubServer(tokens={new_token(): {"name": "alice"}}) as hub:
        found = findings(make_ctx(dict(isolated_env, HF_ENDPOINT=hub.url), hub=hub_version))
    bad = worst(found)
    assert bad.severity == Severity.ERROR
    assert "invalid" in bad.summary and "the token file" in bad.summary
    assert "Invalid credentials in Authorization header" in bad.detail
    assert bad.cause == "auth.invalid_token"
    assert bad.fix_command == command
    assert_never_shown(found, token)


@pytest.mark.parametrize("platform, command", [
    ("linux", "unset HF_TOKEN"),
    ("win32", "Remove-Item Env:HF_TOKEN; [Environment]::SetEnvironmentVariable('HF_TOKEN', $null, 'User')"),
])
def test_expired_env_token_says_expired_and_how_to_remove_the_variable(isolated_env, platform, command):
    token = new_token()
    with HubServer(tokens={token: {"name": "carol", "expired": True}}) as hub:
        found = findings(make_ctx(dict(isolated_env, HF_ENDPOINT=hub.url, HF_TOKEN=token), platform=platform))
    bad = worst(found)
    assert bad.severity == Severity.ERROR and "is expired" in bad.summary and "HF_TOKEN" in bad.summary
    assert bad.fix_command == command


def test_invalid_token_only_warns_when_implicit_tokens_are_disabled(isolated_env):
    token = new_token()
    with HubServer() as hub:
        env = dict(isolated_env, HF_ENDPOINT=hub.url, HF_TOKEN=token, HF_HUB_DISABLE_IMPLICIT_TOKEN="1")
        found = findings(make_ctx(env))
    assert worst(found).severity == Severity.WARN
    assert "HF_HUB_DISABLE_IMPLICIT_TOKEN" in worst(found).detail


def test_unreachable_endpoint_is_a_warning_not_an_error(isolated_env):
    found = findings(make_ctx(dict(isolated_env, HF_TOKEN=new_token())))  # HF_ENDPOINT is a dead port
    bad = worst(found)
    assert bad.severity == Severity.WARN and "validity unknown" in bad.summary and "cannot reach" in bad.summary


def test_never_answering_hub_ends_within_the_check_budget(isolated_env):
    token = new_token()
    with HubServer(hang=True) as hub:
        ctx = make_ctx(dict(isolated_env, HF_ENDPOINT=hub.url, HF_TOKEN=token))
        check = Check(id="auth.token", title="Hugging Face token", run=check_token, timeout=15.0)
        started = time.monotonic()
        [result] = run_checks([check], ctx)
        elapsed = time.monotonic() - started
    assert elapsed < 12, elapsed
    assert result.status == "warning"
    assert any("did not answer within 6 s" in f.summary for f in result.findings)
    assert hub.requests and hub.requests[0][1] == "/api/whoami-v2"


def test_env_only_auth_against_a_hub_that_never_answers_ends_within_the_whoami_budget(isolated_env):
    """huggingface_hub 2.x asks the Hub for /api/agent-harnesses (3 s timeout of its own) while it builds
    the headers, before whoami (6 s): the whole question is bounded to the documented 6 s."""
    import subprocess
    import sys

    with HubServer(hang=True) as hub:
        env = dict(isolated_env, HF_ENDPOINT=hub.url, HF_TOKEN=new_token())
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "lora_doctor", "env", "--only", "auth", "--json"],
                              capture_output=True, text=True, env=env, timeout=60)
        elapsed = time.monotonic() - started
    token = next(c for c in __import__("json").loads(proc.stdout)["checks"] if c["id"] == "auth.token")
    assert any("did not answer within 6 s" in f["summary"] for f in token["findings"])
    assert elapsed < 9.5, elapsed  # 6 s and the start-up; was 12.6 s


def test_whoami_itself_never_takes_longer_than_its_timeout(isolated_env):
    with HubServer(hang=True) as hub:
        started = time.monotonic()
        result = hf_auth._ask(hub.url, new_token(), 1.5)
    assert result.status == "timeout" and time.monotonic() - started < 2.5


def test_versions_are_read_with_packaging():
    assert hf_auth.parse_version("1.0.0rc1") == (1, 0, 0)  # a hand-written parser stopped at "0rc1"
    assert hf_auth.parse_version("0.34.3") == (0, 34, 3) and hf_auth.parse_version("not a version") is None
    assert hf_auth.login_command(hf_auth.parse_version("1.0.0rc1")) == "hf auth login --force"


def test_whoami_is_asked_once_per_token(isolated_env):
    token = new_token()
    with HubServer(tokens={token: {"name": "dave"}}) as hub:
        env = dict(isolated_env, HF_ENDPOINT=hub.url)
        first = hf_auth.whoami(token, env)
        second = hf_auth.whoami(token, env)
    assert first == second and first.status == "valid"
    assert [r for r in hub.requests if r[1] == "/api/whoami-v2"] == [("GET", "/api/whoami-v2", True)]


# -- exposure: shell history and the command line ---------------------------------------------------

def test_token_in_shell_histories_is_reported_by_file_and_line_never_by_value(isolated_env):
    token = new_token()
    home = Path(isolated_env["HOME"])
    data = Path(isolated_env["XDG_DATA_HOME"])
    (home / ".bash_history").write_text(f"ls\ncd sd-scripts\nhuggingface-cli login --token {token}\nls\n")
    (home / ".zsh_history").write_text(f": 1700000000:0;export HF_TOKEN=\"{token}\"\n: 1700000001:0;ls\n")
    fish = data / "fish" / "fish_history"
    fish.parent.mkdir(parents=True)
    fish.write_text(f"- cmd: echo hi\n  when: 1700000000\n- cmd: hf auth login --token={token}\n  when: 1\n")
    appdata = home / "AppData" / "Roaming"
    ps = appdata / "Microsoft" / "Windows" / "PowerShell" / "PSReadLine" / "ConsoleHost_history.txt"
    ps.parent.mkdir(parents=True)
    ps.write_text(f"dir\r\n$env:HF_TOKEN='{token}'\r\n")
    (home / ".python_history").write_text("import os\nlogin(token='hf_SomethingElseEntirely1234567890abc')\n")
    with HubServer(tokens={token: {"name": "erin"}}) as hub:
        env = dict(isolated_env, HF_ENDPOINT=hub.url, HF_TOKEN=token, APPDATA=str(appdata))
        found = findings(make_ctx(env))
    leaks = {f.summary for f in found if f.severity == Severity.WARN}
    assert any(f"{home / '.bash_history'} line 3" in s for s in leaks)
    assert any(f"{home / '.zsh_history'} line 1" in s for s in leaks)
    assert any(f"{fish} line 3" in s for s in leaks)
    assert any(f"{ps} line 2" in s for s in leaks)
    assert not any(".python_history" in s for s in leaks)  # another token there: not the active one
    assert all("revoke" in f.fix for f in found if f.severity == Severity.WARN)
    assert_never_shown(found, token)


def test_the_printed_sed_command_removes_exactly_the_leaking_line(isolated_env):
    import subprocess
    import sys

    if sys.platform == "win32":
        pytest.skip("sed fix is for POSIX shells")
    token = new_token()
    history = Path(isolated_env["HOME"]) / ".bash_history"
    history.write_text(f"ls\nhuggingface-cli login --token {token}\npwd\n")
    found = findings(make_ctx(dict(isolated_env, HF_TOKEN=token), offline=True))
    leak = next(f for f in found if "bash history" in f.summary)
    subprocess.run(["bash", "-c", leak.fix_command], check=True, timeout=10)
    assert history.read_text() == "ls\npwd\n"


def test_token_on_the_wrapped_command_line_is_reported(isolated_env):
    token = new_token()
    argv = ["accelerate", "launch", "train_network.py", "--huggingface_token", token, "--output_dir", "out"]
    found = findings(make_ctx(dict(isolated_env, HF_TOKEN=token), offline=True, argv=argv))
    leak = next(f for f in found if "command line" in f.summary)
    assert leak.severity == Severity.WARN and "argument 5" in leak.summary and "revoke" in leak.fix
    assert_never_shown(found, token)


def test_history_lines_match_by_hash_only():
    token = new_token()
    needle = history_scan.Needle.of(token)
    text = f"a\n--token={token}.\nx {token[:-1]}\n'{token}' {token}\nhf_{token[3:-1]}X\n"
    assert history_scan.lines_with(text, needle) == (2, 4)
    assert token not in repr(needle)


# -- stored_tokens ---------------------------------------------------------------------------------

def test_stored_tokens_are_read_and_a_broken_unused_one_is_mentioned(isolated_env):
    active = new_token()
    write_token_file(isolated_env, active)
    stored = hf_auth.hf_paths(isolated_env).stored_tokens
    stored.write_text(f"[work]\nhf_token = {active}\n\n[old]\nhf_token = hf_Ab...yz\n")
    sources = hf_auth.token_sources(isolated_env)
    assert [(s.kind, s.name) for s in sources] == [("file", "token file"), ("stored", "work"), ("stored", "old")]
    found = findings(make_ctx(isolated_env, offline=True))
    old = next(f for f in found if "'old'" in f.summary)
    assert old.severity == Severity.INFO and old.fix_command == "hf auth logout --token-name old"
    # huggingface_hub before 0.34 has no `hf` command (huggingface_hub 0.34 added `hf`)
    found = findings(make_ctx(isolated_env, offline=True, hub="0.30.2"))
    old = next(f for f in found if "'old'" in f.summary)
    assert old.fix_command == "huggingface-cli logout --token-name old"


# -- --huggingface_repo_id uploads after training ---------------------------------------------------

def test_upload_with_a_read_token_and_a_token_on_the_command_line(isolated_env):
    active, upload = new_token(), new_token()
    argv = ["accelerate", "launch", "train_network.py", "--huggingface_repo_id", "me/lora",
            "--huggingface_token", upload]
    with HubServer(tokens={active: {"name": "amy", "role": "write"}, upload: {"name": "amy", "role": "read"}}) as hub:
        found = findings(make_ctx(dict(isolated_env, HF_ENDPOINT=hub.url, HF_TOKEN=active), argv=argv))
    summaries = [f.summary for f in found if f.severity == Severity.WARN]
    assert any("upload to me/lora after training will be refused" in s and "read token" in s for s in summaries)
    assert any("--huggingface_token" in s and "command line" in s for s in summaries)
    assert_never_shown(found, upload)


def test_upload_with_the_valid_write_login_token_is_quiet(isolated_env):
    active = new_token()
    argv = ["accelerate", "launch", "train_network.py", "--huggingface_repo_id", "me/lora"]
    with HubServer(tokens={active: {"name": "amy", "role": "write"}}) as hub:
        found = findings(make_ctx(dict(isolated_env, HF_ENDPOINT=hub.url, HF_TOKEN=active), argv=argv))
    assert [f.severity for f in found] == [Severity.OK]
