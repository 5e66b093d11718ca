"""`lora-doctor env`: the bytes on the terminal, the JSON, exit codes, the target interpreter."""

import io
import json
import os
import stat
import subprocess
import sys
import time

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


# -- the short default (flutter doctor), wrapped at the width -------------------------------------

def noisy_results():
    python = Check("python.interpreter", "Python", lambda c: ())
    versions = Check("versions.packages", "Package versions", lambda c: ())
    long = ("a very long explanation of why this matters, " * 5).strip()
    return [CheckResult(python, "ok", [Finding(Severity.OK, "Python 3.10.11 (64-bit, venv /v)"),
                                       Finding(Severity.INFO, "a note nobody needs by default", detail="more",
                                               fix="advice")]),
            CheckResult(versions, "error", [Finding(Severity.INFO, "compared with the fallback pins"),
                                            Finding(Severity.ERROR, "transformers is missing", detail=long,
                                                    fix="Install it into the training Python.",
                                                    fix_command="/v/bin/python -m pip install " + "x==1 " * 40)])]


def test_env_default_shows_problems_with_details_and_notes_only_with_v(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    out = Pipe()
    rs = noisy_results()
    render_results(rs, summary(rs), stream=out, brief=True, wrap=True)
    lines = out.data.splitlines()
    assert lines[0] == "[✓] Python: Python 3.10.11 (64-bit, venv /v)"
    assert lines[1] == "[✗] Package versions: transformers is missing"
    assert "note nobody needs" not in out.data and "fallback pins" not in out.data
    assert "Fix: Install it into the training Python." in out.data
    assert lines[-1] == "✗ Doctor found issues: 1 error, 0 warnings. (-v shows the notes and facts behind each line)"
    # prose wraps at 100 columns in a pipe; the command stays whole so that it copies
    command = [ln for ln in lines if ln.lstrip().startswith("$ ")]
    assert len(command) == 1 and command[0].endswith("x==1 " * 40)
    assert all(len(ln) <= 100 for ln in lines if ln not in command)
    assert any(ln.startswith("      ") and "explanation" in ln for ln in lines[3:])  # continuation indented
    verbose = Pipe()
    render_results(rs, summary(rs), stream=verbose, verbose=True, brief=True, wrap=True)
    assert "note nobody needs" in verbose.data and "fallback pins" in verbose.data
    monkeypatch.setenv("COLUMNS", "60")
    narrow = Pipe()
    render_results(rs, summary(rs), stream=narrow, brief=True, wrap=True)
    assert all(len(ln) <= 60 for ln in narrow.data.splitlines() if not ln.lstrip().startswith("$ "))


def test_runbook_env_is_short_and_within_100_columns(tmp_path, isolated_env):
    """The realistic command of the runbook (a dataset, an SD1.5 repo id, fp16): no info block by
    default, no prose line over 100 columns in a pipe."""
    from PIL import Image

    folder = tmp_path / "train" / "10_lineart"
    folder.mkdir(parents=True)
    for i, size in enumerate([(512, 512), (640, 480), (2048, 1536)]):
        Image.new("RGB", size, "white").save(folder / f"page{i}.png")
        (folder / f"page{i}.txt").write_text("lineart, monochrome")
    cmd = ["accelerate", "launch", "train_network.py", "--pretrained_model_name_or_path=runwayml/stable-diffusion-v1-5",
           f"--train_data_dir={tmp_path / 'train'}", "--resolution=512", "--output_dir=out",
           "--network_module=networks.lora", "--mixed_precision=fp16"]
    env = {k: v for k, v in isolated_env.items() if k != "COLUMNS"}
    proc = run_cli(["env", "--offline", "--", *cmd], env=env, cwd=tmp_path)
    lines = proc.stdout.splitlines()
    prose = [ln for ln in lines if not ln.lstrip().startswith("$ ")]
    # (a single path longer than the width stays whole on its line)
    assert all(len(ln) <= 100 or " " not in ln.strip() for ln in prose), [ln for ln in prose if len(ln) > 100]
    assert not any(ln.startswith("    i ") for ln in lines)  # notes only with -v
    assert "num train images * repeats" not in proc.stdout  # the steps check's facts block: -v only
    verbose = run_cli(["env", "--offline", "-v", "--", *cmd], env=env, cwd=tmp_path)
    assert len(verbose.stdout.splitlines()) > len(lines) + 10


# -- --offline: what could not be verified is "not checked", never an error ----------------------

def test_offline_flag_makes_an_uncached_tokenizer_a_warning_and_training_offline_an_error(tmp_path, isolated_env):
    cmd = ["--", "accelerate", "launch", "train_network.py", "--pretrained_model_name_or_path=org/model"]
    proc = run_cli(["env", "--offline", "--json", "--only", "model", *cmd], env=isolated_env, cwd=tmp_path)
    checks = {c["id"]: c for c in json.loads(proc.stdout)["checks"]}
    tokenizer, base = checks["model.tokenizer"], checks["model.base"]
    assert tokenizer["status"] == "warning" and "not checked" in tokenizer["summary"]
    assert base["status"] == "warning" and "not checked" in base["summary"]
    assert proc.returncode == 0  # --offline only keeps lora-doctor off the network: training will be online
    blocked = run_cli(["run", "--check-only", "--offline", "--only", "model", *cmd], env=isolated_env, cwd=tmp_path)
    assert blocked.returncode == 0, blocked.stderr  # and `run` is not blocked (was 78)
    offline = run_cli(["env", "--json", "--only", "tokenizer", *cmd], env=dict(isolated_env, HF_HUB_OFFLINE="1"),
                      cwd=tmp_path)
    (check,) = json.loads(offline.stdout)["checks"]
    assert check["status"] == "error" and offline.returncode == 1
    assert check["findings"][0]["cause"] == "network.tokenizer_not_cached_offline"


# -- --only / --skip: ids, prefixes, names and titles, any case -----------------------------------

def test_only_and_skip_accept_ids_prefixes_names_and_titles():
    from lora_doctor.commands.common import load_checks, matching_ids, resolve_selection

    _, checks, _ = load_checks([])
    assert matching_ids(checks, "Tokenizer") == {"model.tokenizer"} == matching_ids(checks, "TOKENIZER")
    assert matching_ids(checks, "Hugging Face token") == {"auth.token"} == matching_ids(checks, "hf.token")
    assert matching_ids(checks, "hf") == matching_ids(checks, "auth") >= {"auth.token", "auth.git_credentials"}
    assert matching_ids(checks, "gpu") == {"gpu.cuda", "gpu.precision", "gpu.vram"} == matching_ids(checks, "GPU.")
    assert matching_ids(checks, "gpu.c") == {"gpu.cuda"} == matching_ids(checks, "cuda")
    only, skip = resolve_selection(checks, ["gpu", "hf"], ["Git credentials for huggingface.co"])
    assert set(only) == {"gpu.cuda", "gpu.precision", "gpu.vram", "auth.token", "auth.git_credentials"}
    assert skip == ["auth.git_credentials"]


def test_the_help_example_only_gpu_hf_runs(isolated_env):
    proc = run_cli(["env", "--offline", "--json", "--only", "gpu", "hf"], env=isolated_env)
    assert proc.returncode in (0, 1), proc.stderr
    ran = {c["id"] for c in json.loads(proc.stdout)["checks"] if c["status"] != "skipped"}
    assert {"gpu.cuda", "auth.token"} <= ran
    titled = run_cli(["env", "--offline", "--json", "--only", "Hugging Face token", "--skip", "gpu"], env=isolated_env)
    assert [c["id"] for c in json.loads(titled.stdout)["checks"]] == ["auth.token"]


# -- the probe's wait: progress on a terminal, never charged to a budget ---------------------------

def slow_probe(monkeypatch, seconds):
    from lora_doctor.target import probe

    def run_probe(python, timeout, cwd=None, env=None):
        time.sleep(seconds)
        return probe.complete_facts({"packages": {}}, python)

    monkeypatch.setattr(probe, "run_probe", run_probe)


def test_the_probes_wait_is_not_charged_to_a_checks_budget(monkeypatch, tmp_path):
    from lora_doctor.context import build_context
    from lora_doctor.host.doctor import run_checks

    slow_probe(monkeypatch, 1.5)
    ctx = build_context(python=sys.executable, cwd=tmp_path, env={"HOME": str(tmp_path)})

    def needs_facts(c):
        c.facts.get()  # 1.5 s of waiting for the probe, not the check's own time
        time.sleep(1.0)
        return [Finding(Severity.OK, "done")]

    def hangs(c):
        time.sleep(30)
        return []

    started = time.monotonic()
    waiting, hanging = run_checks([Check("a.wait", "Waits", needs_facts, timeout=2.0),
                                   Check("b.hang", "Hangs", hangs, timeout=0.5)], ctx)
    assert waiting.status == "ok", waiting.findings  # 2.5 s in all, 1.0 s of its own: within 2 s
    assert hanging.status == "timeout"
    assert time.monotonic() - started < 4


class Terminal(Pipe):
    def isatty(self):
        return True


def test_progress_on_a_terminal_while_the_probe_imports_torch(monkeypatch, tmp_path):
    from lora_doctor.commands.common import Progress
    from lora_doctor.context import build_context

    slow_probe(monkeypatch, 1.2)
    ctx = build_context(python="/srv/venv/bin/python", cwd=tmp_path, env={"HOME": str(tmp_path)})
    term, pipe = Terminal(), Pipe()
    shown, silent = Progress(ctx, term), Progress(ctx, pipe)
    ctx.facts.get()
    time.sleep(0.2)
    shown.stop()
    silent.stop()
    assert "\rlora-doctor: checking /srv/venv/bin/python (import torch)… 0 s" in term.data
    width = len(term.data.split("\r")[1])
    assert term.data.endswith("\r" + " " * width + "\r")  # erased before the report
    assert pipe.data == ""


def test_progress_line_in_a_real_terminal_is_erased(isolated_env, tmp_path):
    folder = tmp_path / "slowtorch"
    (folder / "torch").mkdir(parents=True)
    (folder / "torch" / "__init__.py").write_text("import time\ntime.sleep(1.5)\n__version__ = '2.6.0+cpu'\n")
    python = folder / "python"
    python.write_text(f'#!/bin/sh\nPYTHONPATH="{folder}" exec "{sys.executable}" "$@"\n')
    python.chmod(python.stat().st_mode | stat.S_IEXEC)
    out, rc = cli_in_pty(["env", "--offline", "--only", "python", "--python", str(python)], isolated_env)
    assert f"lora-doctor: checking {python} (import torch)…" in out
    assert out.index("(import torch)…") < out.index("[✓] Python")
    assert rc == 0
