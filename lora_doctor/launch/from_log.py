"""The training command a pasted log prints itself, used as the command when `diagnose` is given
none, so `{option:…}` fixes, the corrected command and the static option checks work on a paste too.

- The kohya_ss GUI echoes the exact `accelerate launch … train_network.py …` line before the
  script's own output: bare in old versions, after `Executing command:` in newer ones, with the
  launcher as an absolute (often quoted) path such as `C:\\…\\venv\\Scripts\\accelerate.EXE`; a
  shell prompt (`$ `, `PS C:\\x> `, `C:\\x>`) may stand before it.
- accelerate's wrapper error carries the child's argv: `subprocess.CalledProcessError: Command
  '['…python.exe', '…/train_network.py', '--config_file', …]' returned non-zero exit status 1`
  (accelerate/commands/launch.py, simple_launcher), which is all some users paste.

Only a command that parses into a known sd-scripts trainer with its options is taken. The line a
GUI echoes is found by the scanner (diagnose/notable.py, LAUNCH_COMMAND).
"""

from __future__ import annotations

import ast
import re
import shlex

# the launcher (maybe a quoted Windows path to accelerate.exe), then `launch`
_LAUNCHER = re.compile(r"""accelerate(?:\.exe)?(?P<quote>"?)[ \t]+launch\b""", re.IGNORECASE)
_SOURCE_COLUMN = re.compile(r"\s{2,}\(?[\w.\-]+\.py:\d+\)?\s*$")
_WINDOWS = re.compile(r"(?:^|[\s\"'=])[A-Za-z]:[\\/]|\\|\.exe\b", re.IGNORECASE)
_CALLED = re.compile(r"Command '\[")
_ITEM = re.compile(r"""\s*(?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")\s*(,|\])?""")
TRAINERS = re.compile(r"^(?:sdxl_|sd3_|flux_)?train(?:_network|_db|_textual_inversion|_control_net|_controlnet)?$|"
                      r"^fine_tune$|^sdxl_train$|^(?:flux|sd3|lumina|hunyuan_image)_train(?:_network)?$")


def split(line: str) -> list[str]:
    """Split like the platform that ran it: Windows' rules (CommandLineToArgvW) for a line with
    Windows paths, else like a POSIX shell; [] for a POSIX line cut inside quotes."""
    if _WINDOWS.search(line):
        return split_windows(line)
    try:
        return shlex.split(line)
    except ValueError:  # an unbalanced quote: a line cut off by the paste
        return []


def split_windows(line: str) -> list[str]:
    """CommandLineToArgvW: 2n backslashes + `"` -> n backslashes and a quote toggle; 2n+1 -> n
    and a literal `"`; other backslashes are literal. A `"D:\\data\\"` value therefore swallows
    everything up to the next quote, as the training process received it."""
    args: list[str] = []
    cur: list[str] = []
    in_quotes = False
    have = False
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c == "\\":
            j = i
            while j < n and line[j] == "\\":
                j += 1
            count = j - i
            if j < n and line[j] == '"':
                cur.append("\\" * (count // 2))
                if count % 2:
                    cur.append('"')
                    i = j + 1
                else:
                    i = j
                have = True
                continue
            cur.append("\\" * count)
            i, have = j, True
            continue
        if c == '"':
            if in_quotes and i + 1 < n and line[i + 1] == '"':  # "" inside quotes: a literal quote
                cur.append('"')
                i += 2
                continue
            in_quotes = not in_quotes
            have = True
            i += 1
            continue
        if c in " \t" and not in_quotes:
            if have:
                args.append("".join(cur))
                cur, have = [], False
            i += 1
            continue
        cur.append(c)
        have = True
        i += 1
    if have:
        args.append("".join(cur))
    return args


def _usable(argv: list[str]):
    from lora_doctor.launch.command import parse_command

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


def command_from_line(line: str):
    """A Launch from one printed command line (`accelerate launch …`, after a prompt or a GUI's
    `Executing command:`), or None when it is not a usable trainer command."""
    line = _SOURCE_COLUMN.sub("", line.strip())
    m = _LAUNCHER.search(line)
    if not m:
        return None
    head = line[:m.start()]
    if m.group("quote"):  # "C:\…\accelerate.EXE" launch: from the opening quote
        start = head.rfind('"')
        start = 0 if start < 0 else start
    else:  # after the prompt or the prefix: the run of path characters before `accelerate`
        start = max(head.rfind(c) for c in " \t\"'>$") + 1
    argv = split(line[start:])
    if len(argv) < 3:
        return None
    argv[0] = "accelerate"  # a path to accelerate(.exe) means the same on any machine
    return _usable(argv)


def argv_from_called_process(message: str) -> list[str]:
    """The argv in `Command '[…]' returned non-zero exit status N` (a message maybe wrapped over
    lines, or cut: the items before the cut)."""
    text = "".join(part.strip() for part in message.split("\n")) if "\n" in message else message
    m = _CALLED.search(text)
    if not m:
        return []
    rest = text[m.end() - 1:]
    end = rest.find("]'")
    if end > 0:
        try:
            value = ast.literal_eval(rest[:end + 1])
            if isinstance(value, list) and all(isinstance(x, str) for x in value):
                return value
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            pass
    argv, pos = [], 1
    while pos < len(rest):
        item = _ITEM.match(rest, pos)
        if not item or item.group(3) is None:  # an item cut by the paste: dropped
            break
        raw = item.group(1) if item.group(1) is not None else item.group(2)
        try:
            argv.append(ast.literal_eval("'" + raw.replace("'", "\\'") + "'"))
        except (ValueError, SyntaxError):
            argv.append(raw)
        pos = item.end()
        if item.group(3) == "]":
            break
    return argv


def command_from_called_process(message: str):
    """A Launch from accelerate's CalledProcessError message, or None."""
    argv = argv_from_called_process(message)
    if len(argv) < 2:
        return None
    base = re.split(r"[\\/]", argv[0])[-1]
    if base.lower().removesuffix(".exe").startswith(("python", "accelerate")):
        argv[0] = base  # a Windows path to the venv's python.exe names the same program anywhere
    return _usable(argv)


def command_from_log(notable: dict, failures) -> object:
    """The command a log shows: a GUI's echo (what the user recognises), else the argv of a
    launcher's CalledProcessError (what the process received). None when it shows neither."""
    line = notable.get("launch_command")
    launch = command_from_line(line) if line else None
    if launch is not None:
        return launch
    for f in failures:
        if getattr(f, "is_wrapper", False) and "Command '[" in f.message:
            launch = command_from_called_process(f.message)
            if launch is not None:
                return launch
    return None
