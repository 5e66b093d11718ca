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
    write(folder, "broken", "from lora_doctor import hookimpl\nimport no_such_module_for_lora_doctor\n")
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
    assert broken["severity"] == "warn"  # a broken plugin is not a problem of the training
    assert broken["summary"] == ("plugin broken is broken: ModuleNotFoundError: "
                                 "No module named 'no_such_module_for_lora_doctor'")
    assert broken["fix"].endswith("--skip plugin.broken.")
    raising = by_id["raising.check"]["findings"][0]
    assert raising["severity"] == "warn"
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
    ours = [c for c in data["checks"] if c["plugin"] in ("broken", "raising", "slow", "typo", "applies")]
    assert ours and all(c["status"] in ("warning", "timeout") for c in ours)  # never an error: `run` still launches


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
    assert proc.stderr == "lora-doctor env: error: --only gpux: no check has that id, family or title; did you mean gpu?\n"
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
    assert results[1].status == "warning" and "SystemExit: 3" in results[1].findings[0].summary


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


# -- the contract: every hook documented, typed and exercised ----------------------------------
HOOK_TESTS = {}  # hook name -> the test that exercises it through the host, like a plugin would


def _hookspec_names():
    import inspect

    from lora_doctor import hookspecs

    return sorted(name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
                  if name.startswith("lora_doctor_"))


def test_every_hook_is_documented_in_docs_plugins_md():
    import re

    doc = (ROOT / "docs" / "plugins.md").read_text("utf-8")
    headings = re.findall(r"^### `(lora_doctor_\w+)\(", doc, re.M)
    assert sorted(headings) == _hookspec_names()


def test_every_hook_is_typed_and_says_when_it_is_called():
    import inspect

    from lora_doctor import hookspecs

    for name in _hookspec_names():
        fn = getattr(hookspecs, name)
        sig = inspect.signature(fn)
        assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values()), name
        assert sig.return_annotation is not inspect.Signature.empty, name
        doc = inspect.getdoc(fn)
        assert "Called" in doc and "Since" in doc, name
    # the two hook arguments that were both `context` are two names for two things now
    params = {n: list(inspect.signature(getattr(hookspecs, n)).parameters) for n in _hookspec_names()}
    assert params["lora_doctor_diagnose"] == ["failure", "postmortem"]
    assert params["lora_doctor_watch_line"] == ["line", "context"]


def test_every_hook_has_a_test():
    names = {n.removeprefix("test_hook_") for n in globals() if n.startswith("test_hook_")}
    assert names == set(_hookspec_names())


HOOKS_PLUGIN = '''
from lora_doctor import Check, Diagnosis, Finding, Severity, hookimpl


@hookimpl
def lora_doctor_register_checks(register):
    register(Check(id="hooks.check", title="Hooks", run=lambda ctx: [Finding(Severity.INFO, "checked")]))


@hookimpl
def lora_doctor_register_signatures(register):
    import pathlib
    register(pathlib.Path(__file__).with_name("sigs"))


@hookimpl
def lora_doctor_diagnose(failure, postmortem):
    if failure is not None and "frobnicator" in failure.message:
        return [Diagnosis(signature_id="hooks.frob", title="Frobnicated by code", confidence=0.5,
                          fix=["Unfrob {}".format(postmortem.option("output_dir"))])]
    return None


@hookimpl
def lora_doctor_watch_line(line, context):
    return "saw a frobnicator" if "frobnicator" in line else None
'''
SIG = '''
[[signature]]
id = "hooks.sig"
title = "Frobnicator by signature"
severity = "error"
why = "x"
fix = ["y"]
[signature.match]
exception = ["RuntimeError"]
message = 'frobnicator'
[[signature.examples]]
log = "RuntimeError: frobnicator"
'''
FROB_LOG = 'Traceback (most recent call last):\n  File "t.py", line 1, in <module>\nRuntimeError: frobnicator\n'


@pytest.fixture
def hooks_host(tmp_path):
    folder = tmp_path / "hooks"
    write(folder, "hooks", HOOKS_PLUGIN)
    (folder / "sigs").mkdir()
    (folder / "sigs" / "s.toml").write_text(SIG)
    return PluginHost([str(folder)], entry_points=False)


def test_hook_lora_doctor_register_checks(hooks_host):
    checks, errors = hooks_host.checks()
    assert errors == []
    check = next(c for c in checks if c.id == "hooks.check")
    assert check.plugin == "hooks"
    assert [f.summary for f in run_checks([check], make_context())[0].findings] == ["checked"]


def test_hook_lora_doctor_register_signatures(hooks_host):
    from lora_doctor.diagnose.match import diagnose_text

    report = diagnose_text(FROB_LOG, host=hooks_host)
    assert "hooks.sig" in [d.signature_id for d in report.diagnoses]


def test_hook_lora_doctor_diagnose(hooks_host):
    from lora_doctor.diagnose.match import diagnose_text
    from lora_doctor.launch.command import parse_command

    launch = parse_command(["accelerate", "launch", "train_network.py", "--output_dir", "out"])
    report = diagnose_text(FROB_LOG, host=hooks_host, launch=launch)
    mine = next(d for d in report.diagnoses if d.signature_id == "hooks.frob")
    assert mine.fix == ["Unfrob out"] and mine.source == "plugin hooks"


def test_hook_lora_doctor_watch_line(hooks_host):
    hints = []
    for line in ("step 1", "the frobnicator spins", "step 2"):
        hooks_host.watch_line(line, make_context(), hints.append)
    hooks_host.finish_watching(timeout=5)
    assert hints == ["saw a frobnicator"]


def test_a_plugin_with_the_old_diagnose_argument_name_is_broken_with_the_fix(tmp_path):
    write(tmp_path / "p", "old", "from lora_doctor import hookimpl\n\n@hookimpl\n"
                                 "def lora_doctor_diagnose(failure, context):\n    return None\n")
    host = PluginHost([str(tmp_path / "p")], builtins=(), entry_points=False)
    assert "rename the argument" in host.info("old").error and "postmortem" in host.info("old").error


# -- the public surface ---------------------------------------------------------------------
def test_the_package_root_is_the_public_surface_and_stays_lazy():
    import subprocess
    import sys

    import lora_doctor
    from lora_doctor import PUBLIC
    from lora_doctor.model import Check as ModelCheck

    for name in PUBLIC:
        assert getattr(lora_doctor, name) is not None, name
    assert lora_doctor.Check is ModelCheck and set(PUBLIC) <= set(dir(lora_doctor))
    with pytest.raises(AttributeError):
        lora_doctor.no_such_name  # noqa: B018
    code = "import sys, lora_doctor, lora_doctor.cli; print(sorted(m for m in ('pluggy', 'rich', 'lora_doctor.model') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stderr


def test_docs_plugins_md_uses_only_the_public_surface():
    import ast
    import re

    from lora_doctor import PUBLIC

    doc = (ROOT / "docs" / "plugins.md").read_text("utf-8")
    blocks = re.findall(r"```python\n(.*?)```", doc, re.S)
    assert len(blocks) >= 4
    for block in blocks:
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lora_doctor"):
                if node.module == "lora_doctor":
                    assert {a.name for a in node.names} <= set(PUBLIC), block
                else:
                    assert node.module == "lora_doctor.testing", f"{node.module} is not public:\n{block}"
            elif isinstance(node, ast.Import):
                assert not any(a.name.startswith("lora_doctor.") for a in node.names), block


# -- plugin folders: what is imported, what is listed ---------------------------------------
def test_a_plugin_folder_imports_only_files_that_declare_hooks(tmp_path, isolated_env):
    folder = tmp_path / "mixed"
    write(folder, "good", GOOD.format(name="good"))
    write(folder, "helper", "print('HELPER RAN')\nopen(__file__ + '.ran', 'w').close()\n")
    (folder / "mine.toml").write_text(SIG)
    proc = run_cli(["plugins", "--plugin-dir", str(folder)], env=isolated_env)
    assert "HELPER RAN" not in proc.stdout + proc.stderr and not (folder / "helper.py.ran").exists()
    assert f"[–] {folder / 'helper.py'}: declares no hook (no `hookimpl` in it)" in proc.stdout
    assert f"[✓] {folder / 'mine.toml'} (signatures, 1)" in proc.stdout
    assert "    signatures: hooks.sig" in proc.stdout
    data = json.loads(run_cli(["plugins", "--json", "--plugin-dir", str(folder)], env=isolated_env).stdout)
    assert data["folder_signatures"] == [{"path": str(folder / "mine.toml"), "signatures": ["hooks.sig"],
                                          "error": None}]
    assert [i["path"] for i in data["ignored"]] == [str(folder / "helper.py")]


def test_a_broken_plugin_warns_never_blocks_run_and_is_skippable_by_its_id(tmp_path, isolated_env):
    folder = tmp_path / "p"
    write(folder, "broken", "from lora_doctor import hookimpl\nraise RuntimeError('broken at import')\n")
    base = ["--offline", "--only", "python", "plugin", "--plugin-dir", str(folder)]
    proc = run_cli(["run", *base, "--log", str(tmp_path / "t.log"), "--", sys_executable(), "-c",
                    "print('trained')"], env=isolated_env)
    assert proc.returncode == 0 and proc.stdout == "trained\n", proc.stderr
    assert "plugin broken is broken: RuntimeError: broken at import" in proc.stderr
    data = json.loads(run_cli(["env", "--json", *base], env=isolated_env).stdout)
    assert "plugin.broken" in [c["id"] for c in data["checks"]]
    skipped = run_cli(["env", "--json", *base, "--skip", "plugin.broken"], env=isolated_env)
    assert "no check has that id" not in skipped.stderr
    assert "plugin.broken" not in [c["id"] for c in json.loads(skipped.stdout)["checks"]]
    log = tmp_path / "x.log"
    log.write_text(FROB_LOG)
    diag = run_cli(["diagnose", "--json", str(log), "--plugin-dir", str(folder)], env=isolated_env)
    json.loads(diag.stdout)
    assert "plugin broken is broken: RuntimeError: broken at import" in diag.stderr


def sys_executable():
    import sys

    return sys.executable
