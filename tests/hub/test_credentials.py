"""auth.git_credentials with a real git: the store helper, a hanging helper, stale tokens."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from support import run_cli
from support.hub_server import HubServer
from lora_doctor.hub import gitcred
from lora_doctor.host.doctor import run_checks
from lora_doctor.model import Check, Severity
from lora_doctor.plugins.credentials import check_credentials
from test_hf_token import assert_never_shown, make_ctx, new_token, worst

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


@pytest.fixture
def git_env(isolated_env):
    home = Path(isolated_env["HOME"])
    return dict(isolated_env, GIT_CONFIG_GLOBAL=str(home / ".gitconfig"))


def git(env, *args):
    subprocess.run(["git", *args], env=env, check=True, timeout=10, capture_output=True)


def store(env, *lines) -> Path:
    git(env, "config", "--global", "credential.helper", "store")
    path = Path(env["HOME"]) / ".git-credentials"
    path.write_text("".join(line + "\n" for line in lines))
    return path


def findings(env, **kw):
    return list(check_credentials(make_ctx(env, **kw)))


def test_nothing_configured_is_ok(git_env):
    found = findings(git_env, offline=True)
    assert [f.severity for f in found] == [Severity.OK]
    assert "no credential helper configured" in found[0].summary


def test_seed_stale_token_in_store_helper_is_a_warning_and_the_printed_command_removes_it(git_env):
    stale, active = new_token(), new_token()
    path = store(git_env, "https://octocat:ghp_unrelated@github.com",
                 f"https://hf_user:{stale}@huggingface.co")
    with HubServer(tokens={active: {"name": "alice"}}) as hub:
        env = dict(git_env, HF_ENDPOINT=hub.url, HF_TOKEN=active)
        found = findings(env)
    bad = worst(found)
    # huggingface_hub downloads never read git credentials: git clone/push breaks, training does not
    assert bad.severity == Severity.WARN and bad.cause == "auth.stale_git_credential"
    assert f"{path} line 2" in bad.summary and "invalid" in bad.summary
    assert "never read git credentials" in bad.detail  # honest about what it breaks
    assert bad.fix_command == ("printf 'protocol=https\\nhost=huggingface.co\\nusername=hf_user\\n\\n' "
                               "| git credential reject")
    assert_never_shown(found, stale)
    subprocess.run(["bash", "-c", bad.fix_command], env=env, check=True, timeout=10)
    assert path.read_text() == "https://octocat:ghp_unrelated@github.com\n"


def test_store_file_without_the_helper_gets_a_sed_line_delete(git_env):
    if sys.platform == "win32":
        pytest.skip("POSIX sed")
    stale = new_token()
    path = Path(git_env["XDG_CONFIG_HOME"]) / "git" / "credentials"
    path.parent.mkdir(parents=True)
    path.write_text(f"https://hf_user:{stale}@huggingface.co\nhttps://u:p@example.com\n")
    with HubServer() as hub:
        found = findings(dict(git_env, HF_ENDPOINT=hub.url))
    bad = worst(found)
    assert bad.severity == Severity.WARN and "there is no active token" in bad.summary
    assert bad.fix_command.startswith("sed ")
    subprocess.run(["bash", "-c", bad.fix_command], check=True, timeout=10)
    assert path.read_text() == "https://u:p@example.com\n"


def test_credential_equal_to_the_valid_active_token_is_ok(git_env):
    token = new_token()
    store(git_env, f"https://hf_user:{token}@huggingface.co")
    with HubServer(tokens={token: {"name": "alice"}}) as hub:
        found = findings(dict(git_env, HF_ENDPOINT=hub.url, HF_TOKEN=token))
    assert [f.severity for f in found] == [Severity.OK]
    assert "is the active token, valid (user alice)" in found[0].summary


def test_a_different_valid_token_is_a_warning(git_env):
    old, active = new_token(), new_token()
    store(git_env, f"https://hf_user:{old}@huggingface.co")
    with HubServer(tokens={old: {"name": "alice"}, active: {"name": "alice"}}) as hub:
        found = findings(dict(git_env, HF_ENDPOINT=hub.url, HF_TOKEN=active))
    bad = worst(found)
    assert bad.severity == Severity.WARN and "differs from the active token" in bad.summary
    assert bad.cause == "auth.stale_git_credential"


def test_offline_compares_without_asking_the_hub(git_env):
    old = new_token()
    store(git_env, f"https://hf_user:{old}@huggingface.co")
    with HubServer() as hub:
        found = findings(dict(git_env, HF_ENDPOINT=hub.url, HF_TOKEN=new_token()), offline=True)
    assert hub.requests == []
    assert worst(found).severity == Severity.WARN and "offline: not verified" in worst(found).summary


def test_host_specific_store_helper_with_its_own_file(git_env, tmp_path):
    stale = new_token()
    creds = tmp_path / "hf-creds"
    creds.write_text(f"https://hf_user:{stale}@huggingface.co\n")
    git(git_env, "config", "--global", "credential.https://huggingface.co.helper", f"store --file {creds}")
    with HubServer() as hub:
        found = findings(dict(git_env, HF_ENDPOINT=hub.url))
    assert f"{creds} line 1" in worst(found).summary


def test_hanging_helper_is_stopped_within_the_budget(git_env, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "git-credential-hang"
    helper.write_text("#!/bin/sh\nsleep 297\n")
    helper.chmod(0o755)
    env = dict(git_env, PATH=f"{bindir}{os.pathsep}{git_env['PATH']}")
    git(env, "config", "--global", "credential.helper", "hang")
    check = Check(id="auth.git_credentials", title="git", run=check_credentials, timeout=20.0)
    started = time.monotonic()
    [result] = run_checks([check], make_ctx(env, offline=True))
    elapsed = time.monotonic() - started
    assert elapsed < 15, elapsed
    assert result.status == "warning"
    hung = next(f for f in result.findings if "did not answer" in f.summary)
    assert "hang" in hung.summary and "git credential fill" in hung.fix
    if shutil.which("pgrep"):  # the helper and its child were killed with git
        for pattern in (str(helper), "sleep 297"):
            alive = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, timeout=10)
            assert alive.stdout.strip() == "", pattern


def test_missing_manager_core_helper_is_reported_with_the_rename_fix(git_env):
    git(git_env, "config", "--global", "credential.helper", "manager-core")
    found = findings(git_env, offline=True)
    warn = next(f for f in found if f.severity == Severity.WARN)
    assert "git-credential-manager-core is not installed" in warn.summary
    assert warn.fix_command == "git config --global credential.helper manager"


def test_helper_word():
    assert gitcred.helper_word("store --file ~/.x") == "store"
    assert gitcred.helper_word("/usr/local/bin/git-credential-manager") == "manager"
    assert gitcred.helper_word("!f() { echo x; }; f") == "!shell"


def test_cmdkey_listing_is_parsed_whatever_the_labels_language():
    listing = """
Currently stored credentials:

    Target: LegacyGeneric:target=git:https://huggingface.co
    Type: Generic
    User: hf_user

    Ziel: LegacyGeneric:target=git:https://hf_user@huggingface.co
    Typ: Generisch

    Target: LegacyGeneric:target=git:https://github.com
    Type: Generic
"""
    assert gitcred.parse_cmdkey(listing, {"huggingface.co"}) == [
        "LegacyGeneric:target=git:https://huggingface.co", "LegacyGeneric:target=git:https://hf_user@huggingface.co"]


def test_cli_stale_store_credential_warns_exit_0_and_no_token_in_output(git_env):
    stale, active = new_token(), new_token()
    store(git_env, f"https://hf_user:{stale}@huggingface.co")
    with HubServer(tokens={active: {"name": "alice"}}) as hub:
        env = dict(git_env, HF_ENDPOINT=hub.url, HF_TOKEN=active)
        text = run_cli(["env", "--only", "auth", "-v"], env=env)
        data = run_cli(["env", "--only", "auth", "--json"], env=env)
    for proc in (text, data):
        assert proc.returncode == 0  # a warning: it cannot break training
        for secret in (stale, active):
            assert secret not in proc.stdout + proc.stderr
            assert secret[3:] not in proc.stdout + proc.stderr
    assert "git credential reject" in text.stdout
    check = next(c for c in json.loads(data.stdout)["checks"] if c["id"] == "auth.git_credentials")
    assert check["status"] == "warning"
    assert check["findings"][0]["cause"] == "auth.stale_git_credential"
