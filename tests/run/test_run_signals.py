"""`lora-doctor run`: Ctrl-C / SIGTERM reach the child's process group, a second Ctrl-C kills it,
no process of the group outlives the run, --stop-on-nan ends a run whose loss went NaN."""

import os
import signal
import subprocess
import sys
import time

from support.run_helpers import alive, child, kill_quietly, wait_for_file, wrapper_argv


def _start(cmd, isolated_env, tmp_path, *extra):
    return subprocess.Popen(wrapper_argv(cmd, *extra, log=tmp_path / "s.log"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=isolated_env, start_new_session=True)


def _gone(*pids, timeout=10.0) -> bool:
    """Every pid gone, and the child's process group (led by the first pid) empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids) and _group_empty(pids[0]):
            return True
        time.sleep(0.05)
    return False


def _group_empty(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    # members left may be zombies waiting for a reaper that is not ours (PID 1 in a container)
    return not any(alive(int(p)) for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == pgid)


def _pgid(pid: int):
    try:
        return os.getpgid(pid)
    except OSError:
        return None


def test_ctrl_c_is_forwarded_to_the_group(isolated_env, tmp_path):
    pids_file = tmp_path / "pids"
    proc = _start([sys.executable, child("sleeper.py"), str(pids_file)], isolated_env, tmp_path)
    pid, grand = map(int, wait_for_file(pids_file).split())
    try:
        assert os.getpgid(pid) == pid != os.getpgid(proc.pid)  # the child leads its own group
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
        assert b"child got KeyboardInterrupt" in out
        assert proc.returncode == 128 + signal.SIGINT  # Python re-raises SIGINT on KeyboardInterrupt
        assert _gone(pid, grand)
    finally:
        kill_quietly(pid, grand)


def test_second_ctrl_c_kills_a_child_that_ignores_it(isolated_env, tmp_path):
    pids_file = tmp_path / "pids"
    proc = _start([sys.executable, child("sleeper.py"), str(pids_file), "ignore-int"], isolated_env, tmp_path)
    pid, grand = map(int, wait_for_file(pids_file).split())
    try:
        proc.send_signal(signal.SIGINT)
        time.sleep(0.5)
        assert proc.poll() is None and alive(pid)  # ignored: still running
        # The second Ctrl-C, repeated until it takes effect: on a loaded machine two signals that
        # arrive before the wrapper's handler runs are delivered as one (no fixed sleep is enough).
        deadline = time.monotonic() + 20
        while proc.poll() is None and time.monotonic() < deadline:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 128 + signal.SIGKILL
        assert b"second Ctrl-C" in err
        assert _gone(pid, grand)  # the whole group, the grandchild included
        assert b"diagnosis" not in err  # a user's Ctrl-C is not a crash to explain
    finally:
        kill_quietly(pid, grand)


def test_sigterm_is_forwarded(isolated_env, tmp_path):
    pids_file = tmp_path / "pids"
    proc = _start([sys.executable, child("sleeper.py"), str(pids_file)], isolated_env, tmp_path)
    pid, grand = map(int, wait_for_file(pids_file).split())
    try:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
        assert proc.returncode == 128 + signal.SIGTERM
        assert _gone(pid, grand)
    finally:
        kill_quietly(pid, grand)


def test_no_orphans_after_the_child_exits(isolated_env, tmp_path):
    pids_file = tmp_path / "pids"
    proc = _start([sys.executable, child("sleeper.py"), str(pids_file), "exit"], isolated_env, tmp_path)
    pid, grand = map(int, wait_for_file(pids_file).split())
    try:
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0
        assert b"ready" in out
        assert _gone(pid, grand, timeout=2)  # the leftover grandchild was ended with the run
    finally:
        kill_quietly(pid, grand)


def test_nan_hint_and_stop_on_nan(isolated_env, tmp_path):
    started = time.monotonic()
    proc = subprocess.run(wrapper_argv([sys.executable, child("nan_loss.py")], "--stop-on-nan",
                                       log=tmp_path / "nan.log", checks="args"),
                          capture_output=True, env=isolated_env, timeout=60)
    assert time.monotonic() - started < 20  # not the child's full minute
    assert proc.returncode == 128 + signal.SIGINT
    err = proc.stderr.decode()
    assert "[lora-doctor] loss is NaN" in err
    assert "--stop-on-nan: the loss is NaN, stopping the run." in err
    assert err.count("loss is NaN: from here on") == 1  # said once, not on every step
    assert b"[lora-doctor]" not in proc.stdout  # hints never enter the child's stream
    assert b"avr_loss=nan" in proc.stdout
