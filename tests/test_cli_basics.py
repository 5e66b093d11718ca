import json
import subprocess
import sys

from support import run_cli
from lora_doctor import __version__


def test_version_answers_without_heavy_imports():
    code = ("import sys, runpy; sys.argv=['lora-doctor','--version'];"
            "from lora_doctor.cli import main; rc=main();"
            "heavy=[m for m in ('torch','huggingface_hub','rich','pluggy') if m in sys.modules];"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert f"lora-doctor {__version__}" in out
    assert "HEAVY []" in out


def test_env_json_parses_and_has_the_documented_shape(isolated_env):
    proc = run_cli(["env", "--json", "--offline", "--only", "python"], env=isolated_env)
    data = json.loads(proc.stdout)
    assert data["version"] == __version__
    assert {"python", "packages", "torch"} <= set(data["target"])
    check = next(c for c in data["checks"] if c["id"] == "python.interpreter")
    assert check["status"] == "ok"
    assert set(check["findings"][0]) >= {"severity", "summary", "detail", "fix", "fix_command", "cause"}
    assert data["summary"] == {"errors": 0, "warnings": 0}
    assert proc.returncode == 0


def test_usage_error_exits_2(isolated_env):
    proc = run_cli(["env", "--no-such-option"], env=isolated_env)
    assert proc.returncode == 2
    assert "unrecognized arguments" in proc.stderr


def test_every_command_help_has_examples_and_a_description():
    from lora_doctor.cli import COMMANDS, build_parser

    parser = build_parser()
    for name in COMMANDS:
        text = parser.commands[name].format_help()
        assert text.startswith(f"usage: lora-doctor {name}"), text
        assert "\nexamples:\n  lora-doctor " + name in text, text
        assert "Exit code" in " ".join(text.split()), name  # every description states its exit codes
