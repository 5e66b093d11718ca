"""Plugin discovery and isolation: folders, the env var, the per-user folder, entry points."""

import json
import textwrap
import time

import pytest

from support import ROOT, run_cli
from lora_doctor.host.doctor import run_checks
from lora_doctor.model import Check, Finding, Severity
from lora_doctor.host.pluginmanager import PluginHost
from lora_doctor.testing import make_context

GOOD = '''
from lora_doctor import hookimpl
from lora_doctor.model import Check, Finding, Severity

def run(ctx):
    yield Finding(Severity.WARN, "custom warning from {name}", fix="do the thing")

@hookimpl
def lora_doctor_register_checks(register):
    """A working check."""
    register(Check(id="{name}.check", title="{name} check", run=run))
'''
RAISING = '''
from lora_doctor import hookimpl
from lora_doctor.model import Check

def run(ctx):
    raise RuntimeError("boom in the check")

@hookimpl
def lora_doctor_register_checks(register):
    """A check that raises."""
    register(Check(id="raising.check", title="Raising check", run=run))
'''
SLOW = '''
import time
from lora_doctor import hookimpl
from lora_doctor.model import Check, Finding, Severity

def run(ctx):
    time.sleep(60)
    yield Finding(Severity.OK, "never")

@hookimpl
def lora_doctor_register_checks(register):
    """A check that overruns its budget."""
    register(Check(id="slow.check", title="Slow check", run=run, timeout=1.0))
'''
TYPO = '''
from lora_doctor import hookimpl

@hookimpl
def lora_doctor_register_check(register):
    """Misspelled: the hook is lora_doctor_register_checks."""
'''
BAD_APPLIES = GOOD.replace('run=run))', 'run=run, applies="comand"))')


def write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(text))


@pytest.fixture
def plugin_dir(tmp_path):
    folder = tmp_path / "plugins"
    write(folder, "good", GOOD.format(name="good"))
    write(folder, "broken", "import no_such_module_for_lora_doctor\n")
    write(folder, "raising", RAISING)
    write(folder, "slow", SLOW)
    write(folder, "typo", TYPO)
    write(folder, "applies", BAD_APPLIES.format(name="applies"))
    return folder


def test_folder_plugins_broken_raising_slow_and_misspelled_each_cost_only_themselves(plugin_dir, isolated_env):
    started = time.monotonic()
    proc = run_cli(["env", "--json", "--offline", "--plugin-dir", str(plugin_dir)], env=isolated_env, timeout=60)
    assert time.monotonic() - started < 30
    data = json.loads(proc.stdout)
    by_id = {c["id"]: c for c in data["checks"]}
    assert by_id["good.check"]["findings"][0]["summary"] == "custom warning from good"
    assert by_id["python.interpreter"]["status"] == "ok"  # the builtins still ran
    broken = by_id["plugin.broken"]["findings"][0]
    assert broken["severity"] == "error"
    assert broken["summary"] == ("plugin broken is broken: ModuleNotFoundError: "
                                 "No module named 'no_such_module_for_lora_doctor'")
    raising = by_id["raising.check"]["findings"][0]
    assert raising["summary"] == "the check raising.check (plugin raising) crashed: RuntimeError: boom in the check"
    assert raising["fix"].endswith("--skip raising.check.")
    assert by_id["slow.check"]["status"] == "timeout"
    assert by_id["slow.check"]["findings"][0]["summary"] == "did not finish within its 1 s budget"
    assert by_id["slow.check"]["findings"][0]["severity"] == "warn"  # unchecked is not broken: run still launches
    typo = by_id["plugin.typo"]["findings"][0]["summary"]
    assert "unknown hook" in typo and "lora_doctor_register_check" in typo
    assert by_id["plugin.applies"]["findings"][0]["summary"] == (
        "plugin applies is broken: ValueError: Check applies.check: applies='comand' is not one of "
        "always, command, model, dataset")
    assert proc.returncode == 1


def test_plugins_command_lists_sources_checks_and_reasons(plugin_dir, tmp_path, isolated_env):
    env_dir = tmp_path / "from_env"
    write(env_dir, "envplug", GOOD.format(name="envplug"))
    user_dir = tmp_path / "home" / ".config" / "lora-doctor" / "plugins"  # XDG_CONFIG_HOME of isolated_env
    write(user_dir, "userplug", GOOD.format(name="userplug"))
    env = dict(isolated_env, LORA_DOCTOR_PLUGIN_PATH=str(env_dir))
    proc = run_cli(["plugins", "--plugin-dir", str(plugin_dir)], env=env)
    out = proc.stdout
    assert "[✓] lora_doctor.plugins.gpu (builtin)" in out
    assert "    checks: gpu.cuda, gpu.precision, gpu.vram" in out
    assert f"[✓] good (folder) {plugin_dir / 'good.py'}" in out
    assert f"[✓] envplug (folder) {env_dir / 'envplug.py'}" in out
    assert f"[✓] userplug (folder) {user_dir / 'userplug.py'}" in out
    assert f"[✗] broken (folder) {plugin_dir / 'broken.py'}" in out
    assert "    broken: ModuleNotFoundError: No module named 'no_such_module_for_lora_doctor'" in out
    assert proc.returncode == 1
    data = json.loads(run_cli(["plugins", "--json"], env=env).stdout)
    assert {"name": "envplug", "source": "folder", "location": str(env_dir / "envplug.py"),
            "checks": ["envplug.check"], "error": None} in data["plugins"]


def test_entry_point_plugin_installed_in_the_test_environment(tmp_path, isolated_env):
    site = tmp_path / "site"
    write(site, "myplugin", GOOD.format(name="myplugin"))
    info = site / "myplugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: myplugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lora_doctor]\nmyplugin = myplugin\n")
    env = dict(isolated_env, PYTHONPATH=str(site))
    data = json.loads(run_cli(["plugins", "--json"], env=env).stdout)
    row = next(p for p in data["plugins"] if p["name"] == "myplugin")
    assert row == {"name": "myplugin", "source": "entry point", "location": "myplugin", "checks": ["myplugin.check"],
                   "error": None}
    proc = run_cli(["env", "--only", "myplugin"], env=env)
    assert "[!] myplugin check: custom warning from myplugin" in proc.stdout
    assert proc.returncode == 0  # a warning is not an error


def test_only_and_skip_select_by_id_or_family(isolated_env):
    proc = run_cli(["env", "--json", "--offline", "--only", "gpu", "--skip", "gpu.vram"], env=isolated_env)
    ids = [c["id"] for c in json.loads(proc.stdout)["checks"]]
    assert ids == ["gpu.cuda", "gpu.precision"]
    proc = run_cli(["env", "--json", "--only", "gpux"], env=isolated_env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "lora-doctor env: error: --only gpux: no check has that id or family; did you mean gpu?\n"
    proc = run_cli(["env", "--json", "--offline", "--only", "python", "--skip", "nosuch"], env=isolated_env)
    assert proc.returncode == 0 and json.loads(proc.stdout)["checks"]
    assert "--skip nosuch: no check has that id" in proc.stderr


def test_budget_overrun_is_reported_while_others_finish():
    def slow(ctx):
        time.sleep(30)
        return ()

    def fast(ctx):
        yield Finding(Severity.OK, "fast")

    started = time.monotonic()
    results = run_checks([Check("t.slow", "Slow", slow, timeout=0.3), Check("t.fast", "Fast", fast)],
                         make_context())
    assert time.monotonic() - started < 3
    assert [r.status for r in results] == ["timeout", "ok"]


def test_a_check_yielding_junk_or_exiting_is_a_finding_not_a_crash():
    def junk(ctx):
        yield "not a finding"

    def exits(ctx):
        raise SystemExit(3)

    results = run_checks([Check("t.junk", "Junk", junk, plugin="p"), Check("t.exit", "Exit", exits, plugin="p")],
                         make_context())
    assert results[0].findings[0].summary == ("the check t.junk (plugin p) crashed: TypeError: "
                                              "it yielded str, not a lora_doctor.model.Finding")
    assert results[1].status == "error" and "SystemExit: 3" in results[1].findings[0].summary


def test_builtin_plugins_use_the_public_hooks_only():
    host = PluginHost(entry_points=False)
    assert all(not p.error for p in host.plugins if p.source == "builtin"), [p for p in host.plugins if p.error]
    checks, errors = host.checks()
    assert errors == []
    ids = [c.id for c in checks]
    assert ids[:2] == ["python.interpreter", "python.launcher"] and "gpu.cuda" in ids
    assert len(ids) == len(set(ids))


def test_the_docs_plugin_example_and_testing_helper_work(tmp_path, monkeypatch):
    import importlib
    import re
    from pathlib import Path

    from lora_doctor.testing import fake_facts, gpu, make_context, run_check

    doc = (ROOT / "docs" / "plugins.md").read_text("utf-8")
    source = re.search(r"```python\n(# my_checks.py\n.*?)```", doc, re.S).group(1)
    (tmp_path / "my_checks.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    my_checks = importlib.import_module("my_checks")
    ctx = make_context('accelerate launch train_network.py --output_dir "/my out"',
                       facts=fake_facts(devices=[gpu("Tesla T4", (7, 5), 15)]))
    findings = run_check(my_checks, "myteam.output_dir", ctx)
    assert findings[0].severity == Severity.WARN and findings[0].summary == "output_dir has a space: /my out"
    assert run_check(my_checks, "myteam.output_dir", make_context()) == []  # needs a command: skipped
    with pytest.raises(KeyError, match="myteam.output_dir"):
        run_check(my_checks, "myteam.nope", ctx)


def test_testing_helper_diagnoses_a_log_with_a_plugin_signature(tmp_path):
    from lora_doctor.testing import diagnose_log

    (tmp_path / "mine.toml").write_text(
        '[[signature]]\nid = "myteam.frobnicator_jammed"\ntitle = "The frobnicator jammed"\n'
        'severity = "error"\npriority = 90\n[signature.match]\nexception = ["RuntimeError"]\n'
        "message = 'frobnicator jammed'\n"
        'why = "It jams."\nfix = ["Unjam it."]\n'
        '[[signature.examples]]\nlog = """RuntimeError: frobnicator jammed at 3"""\n')
    log = "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nRuntimeError: frobnicator jammed at 3\n"
    found = diagnose_log(log, signature_dirs=[tmp_path])
    assert found and found[0].signature_id == "myteam.frobnicator_jammed"
    assert not any(d.signature_id == "myteam.frobnicator_jammed" for d in diagnose_log(log))


def test_a_folder_named_twice_loads_once_and_a_name_clash_is_one_line(tmp_path, isolated_env):
    first, second = tmp_path / "a", tmp_path / "b"
    write(first, "mine", GOOD.format(name="mine"))
    write(second, "mine", GOOD.format(name="other"))
    env = dict(isolated_env, LORA_DOCTOR_PLUGIN_PATH=str(first))
    proc = run_cli(["plugins", "--json", "--plugin-dir", str(first), "--plugin-dir", str(first) + "/"], env=env)
    assert proc.returncode == 0, proc.stdout
    data = json.loads(proc.stdout)
    assert [p["name"] for p in data["plugins"]].count("mine") == 1
    assert data["folders"].count(str(first)) == 1
    clash = run_cli(["plugins", "--json", "--plugin-dir", str(first), "--plugin-dir", str(second)], env=isolated_env)
    rows = [p for p in json.loads(clash.stdout)["plugins"] if p["name"] == "mine"]
    assert [r["error"] for r in rows] == [None, f"a plugin named mine is already loaded from {first / 'mine.py'}; "
                                                "rename one of them"]
    assert clash.returncode == 1
