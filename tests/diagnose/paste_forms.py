"""What pasting does to a log, as functions: a real log in, the same log as users paste it out.

Used by tests/diagnose/test_paste_*.py (and benchmarks/real_logs.py-style measurements) to re-shape
the labelled real logs of tests/data/corpus into each form. Each function returns the re-shaped
text, or None when the form does not apply to that log (e.g. no exception line to keep alone).
"""

from __future__ import annotations

import re

_FRAME = re.compile(r'^(\s*)File "([^"]*)", line (\d+)(?:, in (.*))?$')


def exception_line(text: str) -> str | None:
    """The root failure's exception line as the log printed it (`Type: first line of the message`)."""
    from lora_doctor.diagnose.logparse import parse_text

    root = parse_text(text).root
    if root is None or not root.exception or not root.message:
        return None
    first = root.message.split("\n", 1)[0].strip()
    want = f"{root.exception_name}: {first[:40]}"
    for line in text.splitlines():
        if want in line:
            return line.strip()
    return None


def one_line(text: str) -> str | None:
    """Only the exception line: `ValueError: bf16 mixed precision requires …`."""
    line = exception_line(text)
    return None if line is None else line + "\n"


def message_only(text: str) -> str | None:
    """Only the message, without the exception type (as in an issue title)."""
    line = exception_line(text)
    if line is None or ": " not in line:
        return None
    return line.split(": ", 1)[1] + "\n"


def lower(text: str) -> str:
    """A forum lower-cased everything."""
    return text.lower()


def lower_message_only(text: str) -> str | None:
    m = message_only(text)
    return None if m is None else m.lower()


def quoted(text: str) -> str:
    """A markdown quote: `> ` before every line."""
    return "".join("> " + line + "\n" for line in text.splitlines())


def fenced(text: str) -> str:
    """In a code fence, inside a quote, after a sentence."""
    return "please help\n\n> ```python\n" + quoted(text) + "> ```\n"


def flat(text: str) -> str:
    """Indentation stripped."""
    return "".join(line.strip() + "\n" for line in text.splitlines())


def gui_prefixed(text: str) -> str:
    """A front end's `[date] [INFO]` prefix before every line."""
    return "".join(f"[2024-05-01 12:00:{i % 60:02d}] [INFO] {line}\n" for i, line in enumerate(text.splitlines()))


def time_prefixed(text: str) -> str:
    """A front end's `HH:MM:SS | ` before every line."""
    return "".join(f"14:01:{i % 60:02d} | {line}\n" for i, line in enumerate(text.splitlines()))


_ZH_TB = "回溯（最近一次调用）："
_ZH_DURING = "在处理上述异常期间，发生了另一个异常："
_ZH_CAUSE = "上述异常是以下异常的直接原因："


def translated_zh(text: str) -> str:
    """A browser's machine translation to Chinese: headers, frames and chain lines."""
    out = []
    for line in text.splitlines():
        if "Traceback (most recent call last):" in line:
            line = line.replace("Traceback (most recent call last):", _ZH_TB)
        elif "During handling of the above exception" in line:
            line = _ZH_DURING
        elif "The above exception was the direct cause" in line:
            line = _ZH_CAUSE
        else:
            m = _FRAME.match(line)
            if m:
                line = f"{m.group(1)}文件 “{m.group(2)}”，第 {m.group(3)} 行" + (f"，在 {m.group(4)}" if m.group(4) else "")
        out.append(line + "\n")
    return "".join(out)


def smart_quotes(text: str) -> str:
    """A web page's typographic quotes and no-break spaces."""
    out = []
    for line in text.splitlines():
        line = re.sub(r'"([^"]*)"', "“\\1”", line)
        line = re.sub(r"'([^']*)'", "‘\\1’", line)
        out.append(line.replace("    ", "\u00a0\u00a0\u00a0\u00a0") + "\n")
    return "".join(out)


def gui_trailer(text: str) -> str:
    """A front end's verdict after the log."""
    return text.rstrip("\n") + "\n22:02:40-417801 ERROR    Training failed / 训练失败\n"


WRAPPER = """Traceback (most recent call last):
  File "C:\\Users\\u\\AppData\\Local\\Programs\\Python\\Python310\\lib\\runpy.py", line 196, in _run_module_as_main
    return _run_code(code, main_globals, None,
  File "C:\\kohya_ss\\venv\\Scripts\\accelerate.exe\\__main__.py", line 7, in <module>
  File "C:\\kohya_ss\\venv\\lib\\site-packages\\accelerate\\commands\\launch.py", line 704, in simple_launcher
    raise subprocess.CalledProcessError(returncode=process.returncode, cmd=cmd)
subprocess.CalledProcessError: Command '['C:\\\\kohya_ss\\\\venv\\\\Scripts\\\\python.exe', 'train_network.py']' returned non-zero exit status 1.
"""


def then_wrapper(text: str) -> str:
    """The real error once, then accelerate's generic wrapper traceback users take for the error."""
    return text.rstrip("\n") + "\n" + WRAPPER


def markdown_eaten(text: str) -> str:
    """Rendered markdown: `<module>` eaten as a tag, `__main__` bold, `\\_` lost."""
    return text.replace("<module>", "").replace("__main__", "main").replace("\\_", "_")


FORMS = {
    "one_line": one_line, "message_only": message_only, "lower": lower, "lower_message_only": lower_message_only,
    "quoted": quoted, "fenced": fenced, "flat": flat, "gui_prefixed": gui_prefixed, "time_prefixed": time_prefixed,
    "translated_zh": translated_zh, "smart_quotes": smart_quotes, "gui_trailer": gui_trailer,
    "then_wrapper": then_wrapper, "markdown_eaten": markdown_eaten,
}


def wrapper_only(command: list[str], exit_code: int) -> str:
    """All the user pasted: accelerate's CalledProcessError carrying the training command
    (accelerate/commands/launch.py, simple_launcher: `cmd = [sys.executable, script, *args]`)."""
    from lora_doctor.launch.command import parse_command

    launch = parse_command(list(command))
    argv = ["/home/user/lora/venv/bin/python", launch.script, *launch.script_args]
    return (
        "Traceback (most recent call last):\n"
        '  File "/home/user/lora/venv/bin/accelerate", line 8, in <module>\n'
        "    sys.exit(main())\n"
        '  File "/home/user/lora/venv/lib/python3.11/site-packages/accelerate/commands/launch.py", line 795, in simple_launcher\n'
        "    raise subprocess.CalledProcessError(returncode=process.returncode, cmd=cmd)\n"
        f"subprocess.CalledProcessError: Command '{argv!r}' returned non-zero exit status {exit_code}.\n")
