"""The training command a pasted log prints itself: the kohya_ss GUI echoes the exact
`accelerate launch … train_network.py …` line (old GUIs bare, newer ones after `Executing command:`)
before the script's own output. Used as the command when `diagnose` is given none, so `{option:…}`
fixes and the corrected command work on a paste too.

Only a line that parses into a known sd-scripts trainer with its options is taken.
"""

from __future__ import annotations

import re
import shlex

# the launcher (maybe a quoted Windows path to accelerate.exe), `launch`, then a trainer script
LINE = re.compile(r"""(?:^|Executing command: |Command: )"?(?P<cmd>(?:[^"\n]*[/\\])?accelerate(?:\.exe)?"? launch\b.*\.py"?(?: .*)?)$""",
                  re.IGNORECASE | re.MULTILINE)
TRAINERS = re.compile(r"^(?:sdxl_|sd3_|flux_)?train(?:_network|_db|_textual_inversion|_control_net|_controlnet)?$|"
                      r"^fine_tune$|^sdxl_train$")


def split(line: str) -> list[str]:
    """Split like cmd.exe and bash both would for these lines: quotes group, backslashes stay."""
    try:
        tokens = shlex.split(line, posix=False)
    except ValueError:  # an unbalanced quote: a line cut off by the paste
        return []
    return [t.replace('"', "") for t in tokens]


def command_from_line(line: str):
    """A Launch from one printed command line, or None when it is not a usable trainer command."""
    from lora_doctor.launch.command import parse_command

    m = LINE.search(line.strip())
    if not m:
        return None
    argv = split(m.group("cmd"))
    if len(argv) < 3:
        return None
    argv[0] = "accelerate"  # a Windows path to accelerate.exe means the same on any machine
    try:
        launch = parse_command(argv)
        last = argv[-1].split("=", 1)[0]
        if last.startswith("--") and (last in launch.ambiguous or last in launch.abbreviations
                                      or last[2:] in launch.ambiguous or last[2:] in launch.abbreviations):
            launch = parse_command(argv[:-1])  # the paste cut the last option short (`--t`)
    except (ValueError, OSError):
        return None
    if not launch.script or not TRAINERS.match(launch.script_name) or not launch.script_args:
        return None
    return launch
