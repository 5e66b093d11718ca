"""Hugging Face tokens: where they come from, which one wins, what is wrong with them, whoami.

Shared by the hf_token and credentials checks. Reads files and environment only; the one network
call is `whoami()` (GET <endpoint>/api/whoami-v2, short timeout, cached per token). Token values
never leave this module in clear text except to that endpoint: use `lora_doctor.redact.mask`.
"""

from __future__ import annotations

import configparser
import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

DEFAULT_ENDPOINT = "https://huggingface.co"
TOKENS_PAGE = "https://huggingface.co/settings/tokens"
WHOAMI_TIMEOUT = 6.0
TRUTHY = {"1", "on", "yes", "true"}
# gitleaks' rule `huggingface-access-token` (config/gitleaks.toml): hf_ + 34 letters; a heuristic, not a spec.
USUAL_LENGTH = 37


def digest(token: str) -> str:
    """What tokens are compared and cached by: never the token itself."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def clean(value: str | None) -> str | None:
    """The token huggingface_hub would use: CR/LF removed, stripped, empty -> None
    (huggingface_hub/utils/_auth.py, `_clean_token`)."""
    if value is None:
        return None
    value = value.replace("\r", "").replace("\n", "").strip()
    return value or None


def truthy(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in TRUTHY


def _expand(value: str, env: Mapping[str, str]) -> str:
    home = env.get("HOME") or env.get("USERPROFILE") or str(Path.home())
    if value.startswith("~"):
        value = home + value[1:]
    return re.sub(r"\$(\w+)|\$\{(\w+)\}|%(\w+)%",
                  lambda m: env.get(m.group(1) or m.group(2) or m.group(3), m.group(0)), value)


def home_dir(env: Mapping[str, str]) -> Path:
    return Path(env.get("HOME") or env.get("USERPROFILE") or str(Path.home()))


@dataclass(frozen=True)
class HfPaths:
    """HF_HOME, the token file and stored_tokens as huggingface_hub computes them."""

    hf_home: Path
    token_file: Path
    stored_tokens: Path


def hf_paths(env: Mapping[str, str]) -> HfPaths:
    if env.get("HF_HOME"):
        hf_home = Path(_expand(env["HF_HOME"], env))
    elif env.get("XDG_CACHE_HOME"):
        hf_home = Path(_expand(env["XDG_CACHE_HOME"], env)) / "huggingface"
    else:
        hf_home = home_dir(env) / ".cache" / "huggingface"
    token_file = Path(_expand(env["HF_TOKEN_PATH"], env)) if env.get("HF_TOKEN_PATH") else hf_home / "token"
    return HfPaths(hf_home, token_file, token_file.parent / "stored_tokens")


def endpoint(env: Mapping[str, str]) -> str:
    return (env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).strip().rstrip("/") or DEFAULT_ENDPOINT


@dataclass(frozen=True)
class TokenSource:
    """One place a token was found. `raw` is the value as written there (never print it)."""

    kind: str  # "env" | "file" | "stored"
    name: str  # the env var, "token file", or the stored token's name
    raw: str = field(repr=False)
    path: Path | None = None

    @property
    def token(self) -> str | None:
        return clean(self.raw)

    @property
    def label(self) -> str:
        if self.kind == "env":
            return f"the {self.name} environment variable"
        if self.kind == "file":
            return f"the token file {self.path}"
        return f"the stored token '{self.name}' in {self.path}"


def _read_text(path: Path, limit: int = 1 << 16) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def token_sources(env: Mapping[str, str]) -> list[TokenSource]:
    """Every token on this machine huggingface_hub could use, in lookup order (huggingface_hub/utils/_auth.py,
    `get_token`: HF_TOKEN, HUGGING_FACE_HUB_TOKEN, the token file; `stored_tokens` for `hf auth switch`)."""
    found = [TokenSource("env", name, env[name]) for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
             if name in env]
    paths = hf_paths(env)
    text = _read_text(paths.token_file)
    if text is not None:
        found.append(TokenSource("file", "token file", text, paths.token_file))
    stored = _read_text(paths.stored_tokens, 1 << 20)
    if stored:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(stored)
        except configparser.Error:
            parser = None
        for section in parser.sections() if parser else ():
            value = parser.get(section, "hf_token", fallback=None)
            if value is not None:
                found.append(TokenSource("stored", section, value, paths.stored_tokens))
    return found


def active_source(sources: list[TokenSource], env: Mapping[str, str],
                  hub_version: tuple[int, ...] | None) -> TokenSource | None:
    """The source whose token huggingface_hub sends: HF_TOKEN, then HUGGING_FACE_HUB_TOKEN, then
    the token file; an empty value counts as unset. Both 0.x and >= 1.0 use this order; 1.x puts
    an OIDC exchange (HF_OIDC_RESOURCE, CI only) first, which `oidc_in_use` reports."""
    for kind, name in (("env", "HF_TOKEN"), ("env", "HUGGING_FACE_HUB_TOKEN"), ("file", "token file")):
        for src in sources:
            if src.kind == kind and src.name == name and src.token:
                return src
    return None


def oidc_in_use(env: Mapping[str, str], hub_version: tuple[int, ...] | None) -> bool:
    return bool(env.get("HF_OIDC_RESOURCE")) and (hub_version is None or hub_version >= (1,))


def parse_version(text: str | None) -> tuple[int, ...] | None:
    """The release numbers of a version (packaging.version: '1.0.0rc1' -> (1, 0, 0)); None if unknown."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(text).release if text else None
    except InvalidVersion:
        return None


def login_command(hub_version: tuple[int, ...] | None, relogin: bool = True) -> str:
    """The login command of *this* huggingface_hub: `hf auth login` since 0.34 (huggingface_hub/cli/auth.py),
    `huggingface-cli login` before; `--force` on 1.x replaces a stored login."""
    if hub_version is None:
        return "hf auth login"
    if hub_version >= (1,):
        return "hf auth login --force" if relogin else "hf auth login"
    if hub_version >= (0, 34):
        return "hf auth login"
    return "huggingface-cli login"


def logout_command(hub_version: tuple[int, ...] | None, token_name: str) -> str:
    """The command of *this* huggingface_hub that deletes one stored token (`hf auth logout --token-name`,
    huggingface_hub/cli/auth.py since 0.34; `huggingface-cli logout` before)."""
    tool = "huggingface-cli logout" if hub_version is not None and hub_version < (0, 34) else "hf auth logout"
    return f"{tool} --token-name {token_name}"


@dataclass(frozen=True)
class FormatProblem:
    severity: str  # "error" | "warn" | "info"
    summary: str
    fix: str = ""


def format_problems(raw: str) -> list[FormatProblem]:
    """Offline checks of a token value as written (never echoes it)."""
    out: list[FormatProblem] = []
    if "\x00" in raw or raw.startswith(("\ufeff", "\ufffd")):
        return [FormatProblem("error", "is saved as UTF-16 or with a byte-order mark (PowerShell's `>` or "
                              "`Out-File` does that), so the token read back is garbage",
                              "Write the file as plain ASCII, or let the login command write it.")]
    token = clean(raw) or ""
    if "..." in token or "…" in token:
        return [FormatProblem("error", "is a truncated copy (it contains '…'/'...', as shown in the token list)",
                              "The full value is shown only once, when a token is created: create a new one at "
                              + TOKENS_PAGE + ".")]
    if not token.isascii():
        return [FormatProblem("error", "contains non-ASCII characters (curly quotes, a non-breaking space…): "
                              "it cannot even be sent in an HTTP header",
                              "Copy the token again from " + TOKENS_PAGE + ".")]
    if len(token) >= 2 and token[0] == token[-1] and token[0] in "'\"":
        out.append(FormatProblem("error", "is wrapped in quotes, which become part of the token",
                                 "Set the token without the quote characters."))
        token = token[1:-1]
    if re.search(r"\s", token):
        out.append(FormatProblem("error", "contains a space or tab inside it (a broken paste)",
                                 "Paste the token again as one word."))
    elif raw != token and raw.strip(" \t") != raw.strip():
        out.append(FormatProblem("info", "ends with a newline/CR; huggingface_hub strips it, other tools may not"))
    elif raw != raw.strip():
        out.append(FormatProblem("info", "has leading/trailing spaces; huggingface_hub strips them, other tools may not"))
    if token.startswith("api_org_"):
        out.append(FormatProblem("error", "is an organization API token (api_org_…), which the Hub no longer accepts",
                                 "Use a personal access token (hf_…) from " + TOKENS_PAGE + "."))
    elif not token.startswith("hf_"):
        out.append(FormatProblem("warn", "does not start with 'hf_' like Hugging Face user access tokens",
                                 "Check that this is a Hugging Face access token from " + TOKENS_PAGE + "."))
    elif not re.fullmatch(r"hf_[A-Za-z0-9]+", token) and not re.search(r"\s", token):
        out.append(FormatProblem("warn", "contains characters that Hugging Face tokens never contain",
                                 "Copy the token again from " + TOKENS_PAGE + "."))
    elif len(token) < USUAL_LENGTH:
        out.append(FormatProblem("warn", f"is {len(token)} characters long; Hugging Face tokens are usually "
                                 f"{USUAL_LENGTH} (hf_ + 34): probably cut off when pasted",
                                 "Copy the full token again, or create a new one at " + TOKENS_PAGE + "."))
    return out


@dataclass(frozen=True)
class WhoAmI:
    """The Hub's answer about one token. status: valid / invalid / expired / unreachable /
    timeout / rate_limited / error / offline / unsendable."""

    status: str
    user: str = ""
    role: str = ""
    token_name: str = ""
    message: str = ""
    seconds: float = 0.0

    @property
    def bad(self) -> bool:
        return self.status in ("invalid", "expired")


_cache: dict[tuple[str, str], WhoAmI] = {}
_locks: dict[tuple[str, str], threading.Lock] = {}
_cache_lock = threading.Lock()


def whoami(token: str, env: Mapping[str, str], *, offline: bool = False,
           timeout: float = WHOAMI_TIMEOUT) -> WhoAmI:
    """Ask <HF_ENDPOINT>/api/whoami-v2 about `token` with huggingface_hub's own HTTP session and
    headers; once per (endpoint, token) per process, so two checks never call it twice. The whole
    question, huggingface_hub's own requests included, takes at most `timeout` seconds."""
    if offline:
        return WhoAmI("offline", message="offline mode: not asked")
    key = (endpoint(env), digest(token))
    with _cache_lock:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        if key not in _cache:
            _cache[key] = _ask(key[0], token, timeout)
        return _cache[key]


def _ask(base: str, token: str, timeout: float) -> WhoAmI:
    """`_request` in a daemon thread, abandoned at the deadline: huggingface_hub may make requests of
    its own with their own timeouts (2.x fetches `/api/agent-harnesses` while building the headers),
    and a timeout on a request bounds each read, not the whole answer."""
    if not token.isascii():
        return WhoAmI("unsendable", message="it is not ASCII, so no HTTP client can send it")
    started = time.monotonic()
    box: list[WhoAmI] = []
    worker = threading.Thread(target=lambda: box.append(_request(base, token, started + timeout)),
                              daemon=True, name="whoami")
    worker.start()
    worker.join(timeout)
    if box:
        return box[0]
    return WhoAmI("timeout", message=f"{base} did not answer within {timeout:.0f} s",
                  seconds=time.monotonic() - started)


def _request(base: str, token: str, deadline: float) -> WhoAmI:
    started = time.monotonic()
    timeout = deadline - started
    try:
        from huggingface_hub.utils import build_hf_headers, get_session

        headers = build_hf_headers(token=token, library_name="lora-doctor")
        left = max(0.1, deadline - time.monotonic())
        response = get_session().get(f"{base}/api/whoami-v2", headers=headers, timeout=left)
    except Exception as exc:  # httpx/requests exceptions differ between huggingface_hub versions
        seconds = time.monotonic() - started
        name = type(exc).__name__
        text = _one_line(str(exc))
        if "timeout" in name.lower() or "timed out" in text.lower():
            return WhoAmI("timeout", message=f"{base} did not answer within {timeout:.0f} s", seconds=seconds)
        if "offline" in name.lower():
            return WhoAmI("offline", message=text, seconds=seconds)
        return WhoAmI("unreachable", message=f"cannot reach {base}: {name}: {text}"[:300], seconds=seconds)
    seconds = time.monotonic() - started
    status = response.status_code
    if status == 200:
        try:
            data = response.json()
        except ValueError:
            return WhoAmI("error", message=f"{base}/api/whoami-v2 answered 200 but not JSON (a proxy or captive portal?)",
                          seconds=seconds)
        access = ((data.get("auth") or {}).get("accessToken") or {}) if isinstance(data, dict) else {}
        return WhoAmI("valid", user=str(data.get("name", "?")), role=str(access.get("role", "")),
                      token_name=str(access.get("displayName", "")), seconds=seconds)
    message = _server_message(response)
    if status == 401:
        return WhoAmI("expired" if "expired" in message.lower() else "invalid", message=message, seconds=seconds)
    if status == 429:
        return WhoAmI("rate_limited", message="the whoami endpoint is rate-limited; try again in a minute",
                      seconds=seconds)
    return WhoAmI("error", message=f"{base}/api/whoami-v2 answered HTTP {status}: {message}"[:300], seconds=seconds)


def _server_message(response) -> str:
    message = response.headers.get("X-Error-Message") or ""
    if not message:
        try:
            body = response.json()
            message = str(body.get("error", "")) if isinstance(body, dict) else ""
        except ValueError:
            message = ""
    return _one_line(message)[:200]


def _one_line(text: str) -> str:
    from lora_doctor.redact import redact_text

    return redact_text(" ".join(text.split()))


def shown(token: str | None) -> str:
    """`mask(token)` made safe for a terminal (a UTF-16 file would put NULs on screen)."""
    from lora_doctor.redact import mask

    return "".join(c if c.isprintable() else "?" for c in mask(token))
