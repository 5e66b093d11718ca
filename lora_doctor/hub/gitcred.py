"""Git credential helpers and the huggingface.co credentials they hold; read-only, never prompts.

Every git call runs through subproc.run_bounded (a hanging helper is killed with its children)
with every prompt disabled: GIT_TERMINAL_PROMPT=0, GCM_INTERACTIVE=0,
GCM_GUI_PROMPT=0, GIT_ASKPASS= , SSH_ASKPASS= (git's GIT_TERMINAL_PROMPT in git(1); Git Credential
Manager's GCM_INTERACTIVE/GCM_GUI_PROMPT in its docs/environment.md).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import unquote, urlsplit

from lora_doctor.hub.token import home_dir
from lora_doctor.subproc import run_bounded

GIT_TIMEOUT = 5.0
FILL_TIMEOUT = 6.0
NO_PROMPTS = {"GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "0", "GCM_GUI_PROMPT": "0",
              "GIT_ASKPASS": "", "SSH_ASKPASS": "", "GIT_PAGER": "cat", "LC_ALL": "C"}


@dataclass(frozen=True)
class Result:
    returncode: int | None
    stdout: str
    stderr: str
    timed_out: bool = False
    seconds: float = 0.0
    error: str = ""  # the command could not start


def quiet_env(env: Mapping[str, str]) -> dict[str, str]:
    return {**env, **NO_PROMPTS}


def run(argv: list[str], env: Mapping[str, str], *, cwd=None, input: str | None = None,
        timeout: float = GIT_TIMEOUT) -> Result:
    """Run a command without a terminal or prompts; its whole process tree dies when it overruns."""
    got = run_bounded(argv, timeout, env=quiet_env(env), cwd=cwd, stdin=(input or "").encode())
    return Result(got.returncode, got.stdout.decode("utf-8", "replace"), got.stderr.decode("utf-8", "replace"),
                  timed_out=got.timed_out, seconds=got.seconds,
                  error=f"cannot run {argv[0]}: {got.error}" if got.error else "")


def find_git(env: Mapping[str, str]) -> str | None:
    return shutil.which("git", path=env.get("PATH", os.defpath))


def config_all(git: str, key: str, env: Mapping[str, str], cwd=None) -> tuple[list[str], Result]:
    """`git config --get-all KEY`; an empty value resets the list, as git itself reads it."""
    res = run([git, "config", "--get-all", key], env, cwd=cwd)
    values: list[str] = []
    for line in res.stdout.splitlines() if res.returncode == 0 else ():
        if line.strip():
            values.append(line.strip())
        else:
            values.clear()
    return values, res


@dataclass(frozen=True)
class Helpers:
    names: list[str]
    timed_out: bool = False


def helpers(git: str, env: Mapping[str, str], host: str = "huggingface.co", cwd=None) -> Helpers:
    """Helpers git would ask for https://HOST: the generic ones, then the host-specific ones."""
    generic, r1 = config_all(git, "credential.helper", env, cwd)
    specific, r2 = config_all(git, f"credential.https://{host}.helper", env, cwd)
    names = list(dict.fromkeys(generic + specific))
    return Helpers(names, r1.timed_out or r2.timed_out)


def helper_word(helper: str) -> str:
    """'store --file x' -> 'store'; '/usr/bin/git-credential-manager' -> 'manager'; '!f() …' -> '!shell'."""
    if helper.startswith("!"):
        return "!shell"
    try:
        first = shlex.split(helper, posix=os.name == "posix")[0]
    except (ValueError, IndexError):
        first = helper.split()[0] if helper.split() else helper
    base = os.path.basename(first.replace("\\", "/"))
    base = re.sub(r"\.exe$", "", base, flags=re.IGNORECASE)
    return base[len("git-credential-"):] if base.startswith("git-credential-") else base


def helper_missing(helper: str, git: str, env: Mapping[str, str]) -> str | None:
    """The program a configured helper needs when it is not installed, else None."""
    if helper.startswith("!"):
        return None
    try:
        first = shlex.split(helper, posix=os.name == "posix")[0]
    except (ValueError, IndexError):
        return None
    if "/" in first or "\\" in first:
        path = Path(os.path.expanduser(first))
        return None if path.exists() or Path(str(path) + ".exe").exists() else str(path)
    program = f"git-credential-{first}"
    exec_path = run([git, "--exec-path"], env).stdout.strip()
    search = os.pathsep.join(p for p in (exec_path, env.get("PATH", "")) if p)
    return None if shutil.which(program, path=search) else program


@dataclass(frozen=True)
class Stored:
    """One huggingface.co credential git holds. `password` never leaves the process in clear."""

    helper: str  # "store", "fill" (some configured helper), "cmdkey"
    username: str
    password: str = field(repr=False)
    host: str = "huggingface.co"
    path: Path | None = None
    line: int | None = None
    target: str = ""  # Windows Credential Manager target name


def store_files(helper_names: list[str], env: Mapping[str, str]) -> list[Path]:
    """The `store` helper's files: --file ones, ~/.git-credentials, $XDG_CONFIG_HOME/git/credentials."""
    files: list[Path] = []
    for helper in helper_names:
        if helper_word(helper) != "store":
            continue
        m = re.search(r"--file(?:=|\s+)(\"[^\"]+\"|'[^']+'|\S+)", helper)
        if m:
            files.append(Path(os.path.expanduser(m.group(1).strip("'\""))))
    home = home_dir(env)
    xdg = Path(env["XDG_CONFIG_HOME"]) if env.get("XDG_CONFIG_HOME") else home / ".config"
    files += [home / ".git-credentials", xdg / "git" / "credentials"]
    return list(dict.fromkeys(files))


def store_entries(path: Path, hosts: set[str]) -> list[Stored]:
    """huggingface.co lines of a git-credentials file (`https://user:pass@host`, URL-encoded)."""
    try:
        text = path.read_bytes()[: 4 << 20].decode("utf-8", "replace")
    except OSError:
        return []
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or "://" not in line:
            continue
        try:
            parts = urlsplit(line)
            host = (parts.hostname or "").lower()
        except ValueError:
            continue
        if host in hosts and parts.password is not None:
            out.append(Stored("store", unquote(parts.username or ""), unquote(parts.password), host, path, number))
    return out


@dataclass(frozen=True)
class Fill:
    status: str  # "found" | "none" | "timeout" | "error"
    credential: Stored | None = None
    message: str = ""
    seconds: float = 0.0


def fill(git: str, env: Mapping[str, str], host: str = "huggingface.co", cwd=None,
         timeout: float = FILL_TIMEOUT) -> Fill:
    """`git credential fill` for https://HOST, non-interactive: what a `git clone` would send."""
    res = run([git, "credential", "fill"], env, cwd=cwd, input=f"protocol=https\nhost={host}\n\n", timeout=timeout)
    if res.timed_out:
        return Fill("timeout", message=f"`git credential fill` did not answer within {timeout:.0f} s",
                    seconds=res.seconds)
    if res.error:
        return Fill("error", message=res.error)
    values = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
    if res.returncode == 0 and values.get("password"):
        return Fill("found", Stored("fill", values.get("username", ""), values["password"], host),
                    seconds=res.seconds)
    last = (res.stderr.strip().splitlines() or [""])[-1]
    if res.returncode != 0 and not re.search(r"terminal prompts disabled|could not read (Username|Password)|"
                                             r"interactivity has been disabled", res.stderr, re.IGNORECASE):
        return Fill("error", message=last[:200], seconds=res.seconds)
    return Fill("none", message=last[:200], seconds=res.seconds)


CMDKEY_TARGET_RE = re.compile(r"^\s*\S[^:]*:\s*(?P<target>(?:LegacyGeneric:target=)?git:https?://(?:[^@\s]+@)?"
                              r"(?P<host>[^/\s:]+)\S*)\s*$", re.MULTILINE)


def parse_cmdkey(text: str, hosts: set[str]) -> list[str]:
    """Windows Credential Manager targets for HOSTS from `cmdkey /list` (labels are localized)."""
    return [m.group("target") for m in CMDKEY_TARGET_RE.finditer(text) if m.group("host").lower() in hosts]


def cmdkey_targets(env: Mapping[str, str], hosts: set[str]) -> tuple[list[str], str]:
    """(targets, problem) on Windows; ([], "") elsewhere."""
    if sys.platform != "win32":
        return [], ""
    res = run(["cmdkey", "/list"], env, timeout=GIT_TIMEOUT)
    if res.timed_out or res.error:
        return [], res.error or "`cmdkey /list` did not answer"
    return parse_cmdkey(res.stdout, hosts), ""
