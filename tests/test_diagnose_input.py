"""`lora-doctor diagnose` and its input: a named pipe nobody writes to, a closed stdin, a UTF-16 log
(what PowerShell 5.1's `>` writes), and one Ctrl-D ending a paste."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import threading
import time

import pytest

from lora_doctor import cli
import lora_doctor.commands.diagnose as diagnose_command

OOM_LOG = """steps:   1%|          | 10/1000 [00:10<16:40,  1.01s/it, avr_loss=0.0912]
Traceback (most recent call last):
  File "/home/u/sd-scripts/train_network.py", line 800, in train
    noise_pred = self.call_unet(args, accelerator, unet, noisy_latents, timesteps, text_encoder_conds)
torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB. GPU 0 has a total capacity of 7.79 GiB of which 1.94 MiB is free.
"""


def diagnose(args, env, **kw):
    return subprocess.run([sys.executable, "-m", "lora_doctor", "diagnose", *args], capture_output=True,
                          env=env, timeout=60, **kw)


posix_only = pytest.mark.skipif(os.name != "posix", reason="named pipes and ptys")


@posix_only
def test_a_named_pipe_nobody_writes_to_is_a_clear_error_not_a_hang(tmp_path, monkeypatch, capsys):
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    monkeypatch.setattr(diagnose_command, "FIFO_WAIT", 0.5)
    started = time.monotonic()
    code = cli.main(["diagnose", str(fifo)])
    assert code == 2 and time.monotonic() - started < 10
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a named pipe and nothing wrote to it within 0.5 s" in err[0]


@posix_only
def test_a_named_pipe_with_a_writer_is_diagnosed(tmp_path, isolated_env):
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)

    def write():
        with open(fifo, "w", encoding="utf-8") as fh:
            fh.write(OOM_LOG)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    proc = diagnose([str(fifo)], isolated_env)
    writer.join(5)
    assert proc.returncode == 0, proc.stderr
    assert b"cuda.oom" in proc.stdout


@pytest.mark.parametrize("path", ["/dev/zero"])
def test_a_device_is_refused_in_one_line(path, isolated_env):
    if not os.path.exists(path):
        pytest.skip(f"no {path}")
    proc = diagnose([path], isolated_env)
    assert proc.returncode == 2
    assert proc.stderr.decode().strip().count("\n") == 0 and "is a character device" in proc.stderr.decode()


@posix_only
def test_a_closed_stdin_is_a_usage_error(isolated_env):
    proc = subprocess.run(["sh", "-c", f'exec "{sys.executable}" -m lora_doctor diagnose - <&-'], capture_output=True,
                          text=True, env=isolated_env, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "stdin is closed" in proc.stderr and "internal error" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_log_is_read(tmp_path, isolated_env, encoding):
    """utf-16 has a BOM (PowerShell 5.1's `>`); -le/-be without one: ASCII interleaved with NULs."""
    log = tmp_path / "ps.log"
    log.write_bytes(OOM_LOG.encode(encoding))
    as_file = diagnose([str(log)], isolated_env)
    assert as_file.returncode == 0, as_file.stderr
    assert b"cuda.oom" in as_file.stdout
    with open(log, "rb") as fh:
        as_stdin = diagnose(["-"], isolated_env, stdin=fh)
    assert as_stdin.returncode == 0 and b"cuda.oom" in as_stdin.stdout


@posix_only
def test_one_ctrl_d_ends_a_paste(isolated_env):
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "lora_doctor", "diagnose", "-"], stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=isolated_env, start_new_session=True)
    os.close(slave)
    try:
        for line in OOM_LOG.splitlines():
            os.write(master, line.encode() + b"\n")
        os.write(master, b"\x04")  # one Ctrl-D at the start of a line: end of the paste
        out, _ = proc.communicate(timeout=20)
        assert b"cuda.oom" in out
    finally:
        proc.kill()
        while select.select([master], [], [], 0)[0]:
            try:
                if not os.read(master, 4096):
                    break
            except OSError:
                break
        os.close(master)
