"""`lora-doctor run`: the child's bytes reach stdout unchanged (pipes and a real pty), the log is
redacted, exit codes are the child's."""

import signal
import subprocess
import sys

import pytest

from support.run_helpers import child, child_env, run_in_pty, run_pipe, wrapper_argv

TOKEN = "hf_A1b2C3d4E5f6G7h8I9j0Kk"
WANDB = "0123456789abcdef0123456789abcdef"


def run_apart(argv, env, timeout=60):
    """stdout and stderr of argv, each through its own pipe."""
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, timeout=timeout)


def test_pipe_mode_bytes_identical_and_log_redacted(isolated_env, tmp_path):
    cmd = [sys.executable, child("streams.py")]
    direct = run_apart(cmd, child_env(isolated_env, COLUMNS="200"))
    log = tmp_path / "run" / "train.log"
    wrapped = run_apart(wrapper_argv(cmd, log=log), isolated_env)
    assert wrapped.returncode == direct.returncode == 0
    assert wrapped.stdout == direct.stdout  # \r progress, ANSI, every byte value, a 300 kB line
    assert direct.stderr == b"to stderr\n"
    assert wrapped.stderr.count(direct.stderr) == 1  # the child's stderr stays on stderr (after our checks)
    assert b"to stderr" not in wrapped.stdout
    assert b"columns 200 unbuffered 1" in wrapped.stdout  # wide COLUMNS in pipe mode, unbuffered
    assert TOKEN.encode() in wrapped.stdout  # the terminal gets the child's bytes untouched
    text = log.read_bytes()
    assert TOKEN.encode() not in text and WANDB.encode() not in text
    assert b"--hf_token [REDACTED]" in text and b"--wandb_api_key [REDACTED]" in text
    # the log holds both streams, whole lines; apart from the secrets, the same bytes
    assert text.count(b"to stderr\n") == 1
    expected = direct.stdout.replace(TOKEN.encode(), b"[REDACTED]").replace(WANDB.encode(), b"[REDACTED]")
    assert text.replace(b"to stderr\n", b"").replace(b" [REDACTED]", b"") == expected.replace(b" [REDACTED]", b"")
    assert (log.parent / "train.report.json").exists()


def test_stderr_redirected_alone_gets_the_childs_errors(isolated_env, tmp_path):
    """`lora-doctor run -- … 2> err.txt`: the traceback lands in err.txt, stdout holds none of it."""
    code = "import sys\nprint('step 1')\nraise SystemExit('boom: a traceback on stderr')\n"
    with open(tmp_path / "err.txt", "wb") as err, open(tmp_path / "out.txt", "wb") as out:
        proc = subprocess.run(wrapper_argv([sys.executable, "-c", code], log=tmp_path / "e.log"), stdout=out,
                              stderr=err, env=isolated_env, timeout=60)
    assert proc.returncode == 1
    assert (tmp_path / "out.txt").read_bytes() == b"step 1\n"
    assert b"\nboom: a traceback on stderr\n" in (tmp_path / "err.txt").read_bytes()
    assert (tmp_path / "e.log").read_bytes() == b"step 1\nboom: a traceback on stderr\n"


def test_columns_set_by_the_user_is_kept(isolated_env, tmp_path):
    env = dict(isolated_env, COLUMNS="91")
    wrapped = subprocess.run(wrapper_argv([sys.executable, child("streams.py")], log=tmp_path / "l.log"),
                             capture_output=True, env=env, timeout=60)
    assert b"columns 91 unbuffered 1" in wrapped.stdout


def test_pty_mode_terminal_sees_the_same_bytes(isolated_env, tmp_path):
    """stdout a terminal, stderr a file (as `2> err.txt` on a terminal): the child's stdout gets a pty
    of the same size, its stderr stays apart, as in the direct run."""
    cmd = [sys.executable, child("streams.py"), "1"]
    env = dict(isolated_env)
    env.pop("COLUMNS", None)
    with open(tmp_path / "direct-stderr", "wb") as err:
        direct, direct_code = run_in_pty(cmd, child_env(env), stderr=err)
    with open(tmp_path / "wrapper-stderr", "wb") as err:
        wrapped, code = run_in_pty(wrapper_argv(cmd, log=tmp_path / "pty.log"), env, stderr=err)
    assert (tmp_path / "direct-stderr").read_bytes() == b"to stderr\n"
    assert (tmp_path / "wrapper-stderr").read_bytes().count(b"to stderr\n") == 1
    assert b"isatty True" in direct and b"size (132, 43)" in direct
    assert wrapped == direct  # colours, \r, line endings, terminal size: as without the wrapper
    assert code == direct_code == 1
    log = (tmp_path / "pty.log").read_bytes()
    assert b"isatty True" in log and b"\r\n" not in log.split(b"garbage")[0]  # the child's own bytes
    assert TOKEN.encode() not in log


def test_rich_traceback_identical(isolated_env, tmp_path):
    cmd = [sys.executable, child("rich_traceback.py")]
    direct = run_apart(cmd, child_env(isolated_env, COLUMNS="200"))
    wrapped = run_apart(wrapper_argv(cmd, log=tmp_path / "r.log"), isolated_env)
    assert wrapped.returncode == direct.returncode == 1
    assert wrapped.stdout == direct.stdout
    assert direct.stderr in wrapped.stderr
    assert b"Traceback" in wrapped.stderr and b"FileNotFoundError" in wrapped.stderr
    # at 200 columns rich keeps the long log record on one line
    assert b"/that/would/fold" in wrapped.stdout.split(b"load Diffusers pretrained models")[1].split(b"\n")[0]


@pytest.mark.parametrize("code", [0, 1, 2, 3, 255, 3221225477])
def test_exit_codes_identical(isolated_env, tmp_path, code):
    """POSIX keeps the low 8 bits of an exit status: 3221225477 (Windows' 0xC0000005) arrives as 5,
    for the direct run and through the wrapper alike."""
    cmd = [sys.executable, "-c", f"import sys; print('bye'); sys.exit({code})"]
    direct = run_pipe(cmd, child_env(isolated_env))
    wrapped = subprocess.run(wrapper_argv(cmd, log=tmp_path / "x.log"), capture_output=True,
                             env=isolated_env, timeout=60)
    assert wrapped.returncode == direct.returncode == code & 0xFF
    assert wrapped.stdout == direct.stdout == b"bye\n"


@pytest.mark.parametrize("name", ["SIGSEGV", "SIGKILL", "SIGTERM", "SIGABRT"])
def test_signal_death_is_128_plus_n(isolated_env, tmp_path, name):
    sig = getattr(signal, name)
    cmd = [sys.executable, child("die.py"), name]
    direct = run_pipe(cmd, child_env(isolated_env))
    assert direct.returncode == -sig
    wrapped = subprocess.run(wrapper_argv(cmd, log=tmp_path / "d.log"), capture_output=True,
                             env=isolated_env, timeout=60)
    assert wrapped.returncode == 128 + sig
    assert wrapped.stdout == direct.stdout == b"about to die\n"
    report = (tmp_path / "d.report.json").read_text()
    assert f"killed by signal {sig} ({name})" in report


def test_command_that_cannot_start(isolated_env, tmp_path):
    proc = subprocess.run(wrapper_argv(["no-such-launcher-xyz", "train_network.py"], "--force", log=tmp_path / "n.log"),
                          capture_output=True, text=True, env=isolated_env, timeout=60)
    assert proc.returncode == 127
    assert "cannot start no-such-launcher-xyz" in proc.stderr
    assert "Traceback" not in proc.stderr
