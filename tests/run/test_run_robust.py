"""`lora-doctor run` with awkward children and awkward surroundings: stdin, a reader of our stdout
that goes away, a child that closes its output, a daemon that keeps the pipe open, a terminal
resized mid-run, a full disk, a 1 GiB stream without a line end."""

import os
import signal
import subprocess
import sys
import time

import pytest

from support.run_helpers import PtySession, alive, child, kill_quietly, wait_for_file, wrapper_argv


def _wrap_child_that_leaves_a_process(script, env, tmp_path, timeout=30):
    """Run a child that leaves a process behind (its pid in a file) through the wrapper; always
    kill that process afterwards. Returns (exit code, stdout, stderr, seconds)."""
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    proc = subprocess.Popen(wrapper_argv([sys.executable, child(script), str(pid_file)], log=tmp_path / "w.log"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err, time.monotonic() - started
    finally:
        proc.kill()
        kill_quietly(int(wait_for_file(pid_file)))


def test_stdin_reaches_the_child(isolated_env, tmp_path):
    proc = subprocess.run(wrapper_argv([sys.executable, child("stdin_line.py")], log=tmp_path / "i.log"),
                          input=b"yes please\n", capture_output=True, env=isolated_env, timeout=60)
    assert proc.returncode == 0
    assert proc.stdout == b"answer?\ngot 'yes please\\n'\n"


def test_reader_of_our_stdout_going_away_keeps_the_run_and_its_exit_code(isolated_env, tmp_path):
    """`lora-doctor run -- … | head -1`: the child runs to its end, the log gets everything, and the
    exit code is still the child's."""
    done = tmp_path / "done"
    argv = wrapper_argv([sys.executable, child("slow_lines.py"), str(done), "20", "3"], log=tmp_path / "h.log")
    wrapper = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=isolated_env)
    head = subprocess.run(["head", "-1"], stdin=wrapper.stdout, capture_output=True, timeout=60)
    wrapper.stdout.close()
    err = wrapper.stderr.read()
    assert wrapper.wait(timeout=60) == 3
    assert head.stdout == b"line 0\n"
    assert done.read_text() == "done"
    assert (tmp_path / "h.log").read_bytes() == b"".join(b"line %d\n" % i for i in range(20))
    assert b"stdout was closed" in err and b"Traceback" not in err


def test_child_closing_its_output_early(isolated_env, tmp_path):
    started = time.monotonic()
    proc = subprocess.run(wrapper_argv([sys.executable, child("closes_stdout.py")], log=tmp_path / "c.log"),
                          capture_output=True, env=isolated_env, timeout=60)
    assert proc.returncode == 4
    assert proc.stdout == b"before closing\n"
    assert time.monotonic() - started < 15


def test_daemon_holding_the_pipe_open_does_not_hang_the_run(isolated_env, tmp_path):
    """A grandchild in a session of its own is out of reach of the group clean-up; once the
    child's group is gone and the pipe is quiet, the run ends anyway."""
    code, out, err, seconds = _wrap_child_that_leaves_a_process("escaped_grandchild.py", isolated_env, tmp_path)
    assert code == 0, err
    assert out == b"parent done\n"
    assert seconds < 10


def test_terminal_resize_reaches_the_pty_child(isolated_env, tmp_path):
    env = dict(isolated_env)
    env.pop("COLUMNS", None)
    with open(tmp_path / "err", "wb") as err:
        session = PtySession(wrapper_argv([sys.executable, child("winch.py")], log=tmp_path / "w.log"), env, err)
        try:
            session.read_until(b"size (132, 43)")
            session.resize(100, 30)
            os.kill(session.proc.pid, signal.SIGWINCH)  # what the terminal does on a resize
            session.read_until(b"resized (100, 30)")
            assert session.close() == 0
        finally:
            session.proc.kill()


def test_full_disk_ends_the_log_not_the_run(isolated_env):
    """--log /dev/full: every write fails with ENOSPC; the training goes on, its output is intact."""
    code = "import sys\nfor i in range(3): print('step', i)\nsys.exit(2)\n"
    proc = subprocess.run(wrapper_argv([sys.executable, "-c", code], log="/dev/full"), capture_output=True,
                          env=isolated_env, timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == b"step 0\nstep 1\nstep 2\n"
    assert b"[lora-doctor] the log is incomplete: No space left on device" in proc.stderr
    assert b"Traceback" not in proc.stderr


def test_memory_stays_bounded_with_a_gigabyte_without_line_ends(isolated_env):
    psutil = pytest.importorskip("psutil")
    code = ("import os\nchunk=(b'y'*4095+b' ')*256\nfor _ in range(1024): os.write(1, chunk)\n"
            "os.write(1, b'--hf_token hf_ABCDEFGHIJKLMNOP')\n")
    proc = subprocess.Popen(wrapper_argv([sys.executable, "-c", code], log="/dev/null"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=isolated_env)
    wrapper = psutil.Process(proc.pid)
    peak = 0
    while proc.poll() is None:
        try:
            peak = max(peak, wrapper.memory_info().rss)
        except psutil.Error:
            break
        time.sleep(0.01)
    assert proc.wait(timeout=120) == 0
    assert peak < 100 << 20, f"wrapper RSS {peak >> 20} MiB for 1 GiB without a line end"
    assert not alive(proc.pid)


def test_a_bug_in_the_watching_never_costs_the_output(tmp_path):
    """Whatever goes wrong in the log or the watcher, the child keeps its pipe and its output."""
    import io

    from lora_doctor.run.runner import Runner

    code = "import sys\nfor i in range(3): print('step', i)\nsys.exit(5)\n"
    hints = io.StringIO()
    with open(tmp_path / "out", "wb") as out:
        result = Runner([sys.executable, "-c", code], log_path=str(tmp_path / "l.log"), use_pty=False,
                        stdout_fd=out.fileno(), fragments=("not bytes",), hint_stream=hints).run()
    assert result.exit_code == 5
    assert (tmp_path / "out").read_bytes() == b"step 0\nstep 1\nstep 2\n"
    assert "internal error, the log and live hints stop here (TypeError" in hints.getvalue()


def test_a_zombie_left_in_the_group_does_not_delay_the_end(isolated_env, tmp_path):
    code, out, err, seconds = _wrap_child_that_leaves_a_process("zombie_in_group.py", isolated_env, tmp_path)
    assert code == 0, err
    assert out == b"left a zombie behind\n"
    assert seconds < 5  # not the 2 + 3 + 3 s of waiting for a group that is gone
