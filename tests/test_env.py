"""`lora-doctor env`: the bytes on the terminal, the JSON, exit codes, the target interpreter."""

import io
import json
import os
import stat
import subprocess
import sys

from support import ROOT, run_cli
from support.run_helpers import run_in_pty
from lora_doctor.output.render import render_results
from lora_doctor.host.doctor import CheckResult, summary
from lora_doctor.model import Check, Finding, Severity

ANSI = "\x1b["


def results():
    ok = Check("a.ok", "Alpha", lambda c: ())
    bad = Check("b.bad", "Beta", lambda c: ())
    skip = Check("c.skip", "Gamma", lambda c: ())
    return [CheckResult(ok, "ok", [Finding(Severity.OK, "all good", facts={"seen": "42"})]),
            CheckResult(bad, "error", [Finding(Severity.ERROR, "it broke", detail="because", fix="do this",
                                               fix_command="pip install x", cause="x.y"),
                                       Finding(Severity.WARN, "and this")]),
            CheckResult(skip, "skipped", skipped_reason="no training command given")]


class Pipe:
    """A non-TTY stream that records bytes (what `lora-doctor env | cat` receives)."""

    encoding = "utf-8"

    def __init__(self):
        self.data = ""

    def write(self, s):
        self.data += s

    def flush(self):
        pass

    def isatty(self):
        return False


def test_plain_text_layout_exact_bytes():
    out = Pipe()
    rs = results()
    render_results(rs, summary(rs), stream=out, header="lora-doctor: checking /venv/bin/python (current)")
    assert out.data == (
        "lora-doctor: checking /venv/bin/python (current)\n"
        "[✓] Alpha: all good\n"
        "[✗] Beta\n"
        "    ✗ it broke\n"
        "      because\n"
        "      Fix: do this\n"
        "        $ pip install x\n"
        "    ! and this\n"
        "[–] Gamma (skipped: no training command given)\n"
        "\n"
        "✗ Doctor found issues: 1 error, 1 warning.\n")


def test_skipped_checks_share_one_line_per_reason():
    out = Pipe()
    rs = results()
    rs.insert(0, CheckResult(Check("d.skip", "Delta", lambda c: ()), "skipped", skipped_reason="no training command given"))
    render_results(rs, summary(rs), stream=out)
    assert out.data.splitlines()[-3] == "[–] Delta; Gamma (skipped: no training command given)"
    assert out.data.count("skipped") == 1
    verbose = Pipe()
    render_results(rs, summary(rs), stream=verbose, verbose=True)
    assert "[–] Delta (skipped: no training command given)\n" in verbose.data


def test_verbose_shows_facts_and_cause():
    out = Pipe()
    rs = results()
    render_results(rs, summary(rs), stream=out, verbose=True)
    assert "    seen: 42\n" in out.data and "(predicts: x.y)" in out.data


def test_ascii_fallback_for_a_terminal_that_cannot_encode_the_marks():
    raw = io.BytesIO()
    out = io.TextIOWrapper(raw, encoding="cp1252", newline="\n")
    rs = results()[:2]
    render_results(rs, summary(rs), stream=out)
    out.flush()
    assert raw.getvalue().decode("cp1252").startswith("[v] Alpha: all good\n[x] Beta\n    x it broke\n")


def cli_in_pty(args, env):
    """Run the CLI on a real pseudo-terminal; return what it wrote, and the exit code."""
    out, code = run_in_pty([sys.executable, "-m", "lora_doctor", *args], env)
    return out.decode("utf-8", "replace"), code


def test_colour_on_a_terminal_and_none_with_no_color_or_a_pipe(isolated_env):
    tty_env = {k: v for k, v in isolated_env.items() if k != "NO_COLOR"}
    tty_env["TERM"] = "xterm-256color"
    coloured, rc = cli_in_pty(["env", "--only", "python"], tty_env)
    assert ANSI in coloured and "Python" in coloured and rc == 0
    plain, _ = cli_in_pty(["env", "--only", "python"], dict(tty_env, NO_COLOR="1"))
    assert ANSI not in plain and "[✓] Python: Python " in plain
    piped = run_cli(["env", "--only", "python"], env=tty_env)
    assert ANSI not in piped.stdout and piped.stdout.startswith("lora-doctor: checking ")


def test_json_is_the_documented_object(isolated_env, tmp_path):
    proc = run_cli(["env", "--json", "--offline", "--only", "python", "gpu", "--",
                    "accelerate", "launch", "train_network.py", "--mixed_precision", "bf16"],
                   env=isolated_env, cwd=tmp_path)
    data = json.loads(proc.stdout)
    assert set(data) >= {"version", "target", "command", "checks", "summary"}
    assert {"python", "packages", "torch", "probe", "chosen_by"} <= set(data["target"])
    for check in data["checks"]:
        assert set(check) >= {"id", "title", "status", "summary", "findings"}
        assert check["status"] in {"ok", "warning", "error", "skipped", "timeout"}
        for f in check["findings"]:
            assert set(f) >= {"severity", "summary", "detail", "fix", "fix_command", "cause"}
    assert data["summary"]["errors"] == sum(f["severity"] == "error" for c in data["checks"] for f in c["findings"])
    assert data["command"] == {"launcher": "accelerate", "script": "train_network.py"}
    assert proc.returncode == 1  # CPU torch: errors


def test_exit_codes(isolated_env, tmp_path):
    assert run_cli(["env", "--only", "python"], env=isolated_env).returncode == 0
    bad = run_cli(["env", "--python", str(tmp_path / "nope")], env=isolated_env)
    assert bad.returncode == 2 and bad.stderr.startswith("lora-doctor env: error: argument --python: no such "
                                                         f"interpreter: {tmp_path / 'nope'}")
    assert run_cli(["env", "--"], env=isolated_env).returncode == 2
    nodir = run_cli(["env", "--sd-scripts", str(tmp_path / "nodir")], env=isolated_env)
    assert nodir.returncode == 2 and "--sd-scripts" in nodir.stderr and "no such folder" in nodir.stderr
    assert run_cli(["env", "--only"], env=isolated_env).returncode == 2


def fake_venv(tmp_path, name):
    """A folder shaped like a venv whose bin/python is this interpreter and whose accelerate
    console script names it in its shebang, like pip writes it."""
    bindir = tmp_path / name / "bin"
    bindir.mkdir(parents=True)
    (bindir / "python").symlink_to(sys.executable)
    acc = bindir / "accelerate"
    acc.write_text(f"#!{bindir / 'python'}\nimport sys\nsys.exit(0)\n")
    acc.chmod(acc.stat().st_mode | stat.S_IEXEC)
    return bindir


def test_target_is_the_python_behind_the_commands_accelerate(tmp_path, isolated_env):
    bindir = fake_venv(tmp_path, "trainenv")
    env = dict(isolated_env, PATH=str(bindir) + os.pathsep + isolated_env["PATH"])
    proc = run_cli(["env", "--json", "--only", "python", "--", "accelerate", "launch", "train_network.py"],
                   env=env, cwd=tmp_path)
    data = json.loads(proc.stdout)
    assert data["target"]["chosen_by"] == "command"
    assert data["target"]["interpreter"] == str(bindir / "python")
    assert data["target"]["python"]["executable"] == str(bindir / "python")
    launcher = next(c for c in data["checks"] if c["id"] == "python.launcher")
    assert launcher["status"] == "ok"


def test_accelerate_not_on_path_means_the_venv_is_not_activated(tmp_path, isolated_env):
    sds = tmp_path / "sd-scripts"
    (sds / "library").mkdir(parents=True)
    (sds / "library" / "train_util.py").write_text("")
    (sds / "train_network.py").write_text("")
    fake_venv(sds, "venv")
    env = dict(isolated_env, PATH="/usr/bin:/bin")
    proc = run_cli(["env", "--only", "python", "--", "accelerate", "launch", "train_network.py"], env=env, cwd=sds)
    assert "[✗] Launcher: `accelerate` is not found on PATH" in proc.stdout
    assert f"$ source {sds / 'venv' / 'bin' / 'activate'}" in proc.stdout
    assert f"checking {sds / 'venv' / 'bin' / 'python'} (sd-scripts' venv)" in proc.stdout
    data = json.loads(run_cli(["env", "--json", "--only", "python.launcher", "--", "accelerate", "launch",
                               "train_network.py"], env=env, cwd=sds).stdout)
    assert data["checks"][0]["findings"][0]["cause"] == "install.venv_not_activated"


def test_python_option_accepts_a_venv_folder(tmp_path, isolated_env):
    fake_venv(tmp_path, "myvenv")
    proc = run_cli(["env", "--json", "--only", "python", "--python", str(tmp_path / "myvenv")], env=isolated_env)
    assert json.loads(proc.stdout)["target"]["interpreter"] == str(tmp_path / "myvenv" / "bin" / "python")


def test_python_dash_m_lora_doctor_and_the_console_script_agree(isolated_env):
    script = ROOT / ".venv" / "bin" / "lora-doctor"
    if not script.exists():
        script = os.path.join(os.path.dirname(sys.executable), "lora-doctor")
    a = subprocess.run([str(script), "--version"], capture_output=True, text=True, env=isolated_env, timeout=30)
    b = run_cli(["--version"], env=isolated_env)
    assert a.stdout == b.stdout and a.stdout.startswith("lora-doctor ")


def test_a_token_in_a_finding_never_reaches_the_terminal_in_full():
    out = Pipe()
    leaky = Check("l.leak", "Leaky", lambda c: ())
    token = "hf_" + "abcdefghijklmnopqrstuvwxyz123456"
    rs = [CheckResult(leaky, "warning", [Finding(Severity.WARN, f"token {token} looks odd",
                                                 fix_command=f"hf auth login --token {token}")])]
    render_results(rs, summary(rs), stream=out)
    assert token not in out.data and "hf_[REDACTED]" in out.data
