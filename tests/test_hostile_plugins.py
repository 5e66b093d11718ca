"""A broken plugin costs only itself (issue 13): plugins that sleep, print, exit the process or
ship pathological signatures, through the real CLI. Time limits are wide (a loaded CI machine);
each sits far below what the old behaviour cost (60 s sleeps)."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
import time

import pytest

from support import run_cli
from lora_doctor.host import isolation
from lora_doctor.host.pluginmanager import HOOK_BUDGET, IMPORT_BUDGET, PRECHECK_STARTUP, PluginHost

SLOW = 60  # what a hostile plugin sleeps; every test finishes in a fraction of it
LOG = 'Traceback (most recent call last):\n  File "a.py", line 1, in <module>\nRuntimeError: {}\n'


def plugin(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(textwrap.dedent(text))
    return folder


def timed(args, env, **kw):
    started = time.monotonic()
    proc = run_cli(args, env=env, timeout=SLOW * 2, **kw)
    return proc, time.monotonic() - started


# -- slow plugins ---------------------------------------------------------------------------
def test_a_sleep_at_import_costs_one_budget_once_then_nothing(tmp_path, isolated_env):
    folder = plugin(tmp_path / "p", "sleepy", f"""
        import time
        from lora_doctor import hookimpl
        time.sleep({SLOW})
        """)
    args = ["plugins", "--json", "--plugin-dir", str(folder)]
    proc, first = timed(args, isolated_env)
    assert first < IMPORT_BUDGET + PRECHECK_STARTUP + 15
    row = next(p for p in json.loads(proc.stdout)["plugins"] if p["name"] == "sleepy")
    assert row["error"].startswith("importing it takes longer than")
    proc, second = timed(args, isolated_env)  # the verdict is cached until the file changes
    assert second < IMPORT_BUDGET, second
    assert next(p for p in json.loads(proc.stdout)["plugins"] if p["name"] == "sleepy")["error"] == row["error"]


def test_sleeps_in_register_hooks_cost_one_budget_and_are_reported(tmp_path, isolated_env):
    folder = tmp_path / "p"
    for name in ("sleepy_a", "sleepy_b"):  # two slow plugins cost one budget, not two
        plugin(folder, name, f"""
            import time
            from lora_doctor import hookimpl

            @hookimpl
            def lora_doctor_register_checks(register):
                time.sleep({SLOW})

            @hookimpl
            def lora_doctor_register_signatures(register):
                time.sleep({SLOW})
            """)
    proc, seconds = timed(["env", "--json", "--offline", "--only", "python", "plugin", "--plugin-dir", str(folder)],
                          isolated_env)
    assert seconds < HOOK_BUDGET + 15
    checks = {c["id"]: c for c in json.loads(proc.stdout)["checks"]}
    assert "took longer than" in checks["plugin.sleepy_a"]["findings"][0]["summary"]
    assert checks["plugin.sleepy_b"]["status"] == "warning"
    log = tmp_path / "t.log"
    log.write_text(LOG.format("boom"))
    proc, seconds = timed(["diagnose", str(log), "--plugin-dir", str(folder)], isolated_env)
    assert seconds < HOOK_BUDGET + 15
    assert "plugin sleepy_a is broken: lora_doctor_register_signatures took longer than" in proc.stderr


def test_a_sleep_in_a_diagnose_hook_costs_one_budget(tmp_path, isolated_env):
    folder = plugin(tmp_path / "p", "slowdiag", f"""
        import time
        from lora_doctor import hookimpl

        @hookimpl
        def lora_doctor_diagnose(failure, postmortem):
            time.sleep({SLOW})
        """)
    log = tmp_path / "t.log"
    log.write_text(LOG.format("boom"))
    proc, seconds = timed(["diagnose", "--json", str(log), "--plugin-dir", str(folder)], isolated_env)
    assert seconds < HOOK_BUDGET + 15
    report = json.loads(proc.stdout)
    assert any("slowdiag" in e and "took longer than" in e for e in report["plugin_errors"])
    assert "plugin slowdiag is broken" in proc.stderr


def test_a_slow_watch_line_never_stalls_the_training_output(tmp_path, isolated_env):
    folder = plugin(tmp_path / "p", "slowwatch", f"""
        import time
        from lora_doctor import hookimpl

        @hookimpl
        def lora_doctor_watch_line(line, context):
            time.sleep({SLOW})
        """)
    child = tmp_path / "child.py"
    child.write_text("import time\nfor i in range(20):\n    print(f'line {i}', flush=True)\n    time.sleep(0.05)\n")
    proc, seconds = timed(["run", "--offline", "--only", "python", "--plugin-dir", str(folder),
                           "--log", str(tmp_path / "t.log"), "--", sys.executable, str(child)], isolated_env)
    assert seconds < 20, seconds  # the old copy loop waited 60 s per line
    assert proc.returncode == 0
    assert proc.stdout == "".join(f"line {i}\n" for i in range(20))
    assert "plugin slowwatch: its lora_doctor_watch_line took longer than 1 s on one line" in proc.stderr


# -- output and exits -----------------------------------------------------------------------
PRINTER = """
    from lora_doctor import Check, Finding, Severity, hookimpl
    print("PRINTED AT IMPORT")

    def run(ctx):
        print("PRINTED IN A CHECK")
        yield Finding(Severity.OK, "fine")

    @hookimpl
    def lora_doctor_register_checks(register):
        print("PRINTED IN REGISTER")
        register(Check(id="printer.check", title="Printer", run=run))

    @hookimpl
    def lora_doctor_register_signatures(register):
        print("PRINTED IN REGISTER SIGNATURES")

    @hookimpl
    def lora_doctor_diagnose(failure, postmortem):
        print("PRINTED IN DIAGNOSE")

    @hookimpl
    def lora_doctor_watch_line(line, context):
        print("PRINTED IN WATCH")
    """


def test_a_printing_plugin_never_reaches_stdout(tmp_path, isolated_env):
    folder = plugin(tmp_path / "p", "printer", PRINTER)
    proc = run_cli(["env", "--json", "--offline", "--only", "python", "printer", "--plugin-dir", str(folder)],
                   env=isolated_env)
    assert "printer.check" in [c["id"] for c in json.loads(proc.stdout)["checks"]]
    assert "PRINTED IN A CHECK" in proc.stderr and "PRINTED AT IMPORT" in proc.stderr
    log = tmp_path / "t.log"
    log.write_text(LOG.format("boom"))
    proc = run_cli(["diagnose", "--json", str(log), "--plugin-dir", str(folder)], env=isolated_env)
    json.loads(proc.stdout)
    assert "PRINTED IN DIAGNOSE" in proc.stderr
    proc = run_cli(["run", "--offline", "--only", "python", "--plugin-dir", str(folder), "--log",
                    str(tmp_path / "r.log"), "--", sys.executable, "-c", "print('a'); print('b')"], env=isolated_env)
    assert proc.stdout == "a\nb\n"  # the passthrough is the child's bytes only
    assert "PRINTED IN WATCH" in proc.stderr


def test_os_exit_at_import_cannot_end_the_doctor(tmp_path, isolated_env):
    folder = plugin(tmp_path / "p", "exiter", """
        import os
        from lora_doctor import hookimpl
        os._exit(0)
        """)
    proc = run_cli(["run", "--offline", "--only", "python", "plugin", "--plugin-dir", str(folder), "--log",
                    str(tmp_path / "r.log"), "--", sys.executable, "-c", "print('launched'); raise SystemExit(3)"],
                   env=isolated_env)
    assert proc.returncode == 3 and proc.stdout == "launched\n"  # the child ran; its exit code came back
    assert "plugin exiter is broken: importing it ends the process (exit code 0" in proc.stderr


def test_os_exit_and_sys_exit_in_a_check_are_the_checks_failures(tmp_path, isolated_env):
    folder = plugin(tmp_path / "p", "exits", """
        import os, sys
        from lora_doctor import Check, hookimpl

        @hookimpl
        def lora_doctor_register_checks(register):
            register(Check(id="exits.os", title="os._exit", run=lambda ctx: os._exit(0)))
            register(Check(id="exits.sys", title="sys.exit", run=lambda ctx: sys.exit(0)))
        """)
    proc = run_cli(["env", "--json", "--offline", "--only", "python", "exits", "--plugin-dir", str(folder)],
                   env=isolated_env)
    checks = {c["id"]: c for c in json.loads(proc.stdout)["checks"]}
    assert "PluginExit: os._exit(0) called by plugin code" in checks["exits.os"]["findings"][0]["summary"]
    assert checks["exits.sys"]["status"] == "warning"


# -- signatures -----------------------------------------------------------------------------
def _slow_signatures(count: int) -> str:
    return "\n".join(f"""
[[signature]]
id = "slow.s{i}"
title = "slow {i}"
severity = "error"
why = "x"
fix = ["y"]
[signature.match]
log_any = ['(x|x)+y{i}']
""" for i in range(count))


def test_sixty_slow_regexes_share_one_total_budget(tmp_path, isolated_env):
    folder = tmp_path / "sigs"
    folder.mkdir()
    (folder / "slow.toml").write_text(_slow_signatures(60))
    log = tmp_path / "t.log"
    log.write_text(LOG.format("x" * 32) + "two\nthree\n")  # 5 lines
    proc, seconds = timed(["diagnose", "--json", str(log), "--plugin-dir", str(folder)], isolated_env)
    assert seconds < 20, seconds  # was 60 s: one second per pattern
    errors = json.loads(proc.stdout)["signature_errors"]
    assert sum("slow.toml" in e and "took longer than" in e for e in errors) >= 50


def test_a_huge_signature_file_is_refused_with_one_line(tmp_path, isolated_env):
    folder = tmp_path / "sigs"
    folder.mkdir()
    big = folder / "big.toml"
    with open(big, "w") as fh:
        fh.write(_slow_signatures(1))
        fh.write("# " + "x" * 1000 + "\n" * 0)
        for _ in range(3000):
            fh.write("# " + "padding " * 60 + "\n")
    proc, seconds = timed(["errors", "test", str(big)], isolated_env)
    assert seconds < 20
    line = next(ln for ln in proc.stdout.splitlines() if "big.toml" in ln)
    assert "too big" in line and "1 MB" in line
    assert proc.returncode == 1


def test_a_user_signature_cannot_take_a_builtin_id(tmp_path, isolated_env):
    folder = tmp_path / "sigs"
    folder.mkdir()
    (folder / "mine.toml").write_text(textwrap.dedent('''
        [[signature]]
        id = "dataset.image_too_large_no_bucket"
        title = "HIJACKED"
        severity = "error"
        why = "x"
        fix = ["y"]
        [signature.match]
        message = 'image too large'
        '''))
    log = tmp_path / "t.log"
    log.write_text(LOG.replace("RuntimeError", "AssertionError").format(
        "image too large, but cropping and bucketing are disabled"))
    proc = run_cli(["diagnose", "--json", str(log), "--plugin-dir", str(folder)], env=isolated_env)
    report = json.loads(proc.stdout)
    assert report["diagnoses"][0]["id"] == "dataset.image_too_large_no_bucket"
    assert report["diagnoses"][0]["title"] != "HIJACKED"
    assert any("mine.toml" in e and "builtin" in e for e in report["signature_errors"])


# -- the isolation helpers ------------------------------------------------------------------
def test_call_all_waits_one_budget_for_all_and_reports_overruns():
    started = time.monotonic()
    out = isolation.call_all([("slow1", lambda: time.sleep(SLOW), {}), ("fast", lambda: 42, {}),
                              ("slow2", lambda: time.sleep(SLOW), {}), ("raises", lambda: 1 / 0, {})],
                             budget=0.5, name="hook")
    assert time.monotonic() - started < 5
    assert [(label, ok) for label, ok, _ in out] == [("slow1", False), ("fast", True), ("slow2", False),
                                                     ("raises", False)]
    assert isinstance(out[0][2], isolation.HookTimeout) and out[1][2] == 42
    assert isinstance(out[3][2], ZeroDivisionError)


def test_plugin_threads_print_to_stderr_and_cannot_os_exit(capfd):
    def plugin_code():
        print("from the plugin")
        os._exit(7)

    ((_, ok, value),) = isolation.call_all([("p", plugin_code, {})], budget=5)
    print("from the doctor")
    sys.stdout.flush()
    out, err = capfd.readouterr()
    assert not ok and isinstance(value, isolation.PluginExit)
    assert "from the plugin" in err and "from the plugin" not in out
    assert "from the doctor" in out


def test_the_watchers_drop_lines_instead_of_blocking(tmp_path):
    from lora_doctor.host import watch

    gate = threading.Event()
    seen = []

    class Host:
        slow: dict = {}

        def hook_impls(self, name):
            class Impl:
                plugin_name = "slowpoke"
                argnames = ("line",)

                @staticmethod
                def function(line):
                    gate.wait(10)
                    seen.append(line)

            return [Impl]

    hints = []
    w = watch.Watchers(Host(), None, hints.append, budget=SLOW)
    started = time.monotonic()
    for i in range(watch.QUEUE_LINES * 4):
        w.offer(f"line {i}")
    assert time.monotonic() - started < 1  # never waits for the plugin
    gate.set()
    w.close(timeout=10)
    assert seen[-1] == f"line {watch.QUEUE_LINES * 4 - 1}"  # the newest lines are kept
    assert len(seen) <= watch.QUEUE_LINES + 1


def test_a_plugin_host_without_subprocess_precheck_still_loads(tmp_path):
    folder = plugin(tmp_path / "p", "fine", """
        from lora_doctor import hookimpl

        @hookimpl
        def lora_doctor_watch_line(line, context):
            return None
        """)
    host = PluginHost([str(folder)], builtins=(), entry_points=False, precheck=False)
    assert host.info("fine") is not None and not host.info("fine").error


@pytest.mark.parametrize("junk", ["", "not json", "[]"])
def test_a_corrupt_precheck_cache_is_ignored(tmp_path, monkeypatch, junk):
    from lora_doctor.host import precheck

    monkeypatch.setenv("LORA_DOCTOR_HOME", str(tmp_path))
    precheck.cache_path().write_text(junk)
    folder = plugin(tmp_path / "p", "fine", "from lora_doctor import hookimpl\n")
    target = precheck.file_target(folder / "fine.py", "lora_doctor_user_plugin_fine")
    assert precheck.precheck([target], budget=30) == {target: ""}
    assert json.loads(precheck.cache_path().read_text()) == {target.key: ""}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_process_forked_by_plugin_code_can_still_os_exit():
    def forks():
        pid = os.fork()
        if pid == 0:
            os._exit(7)  # the child of a multiprocessing worker ends like this
        return os.waitpid(pid, 0)[1]

    ((_, ok, status),) = isolation.call_all([("p", forks, {})], budget=30)
    assert ok and os.WEXITSTATUS(status) == 7
