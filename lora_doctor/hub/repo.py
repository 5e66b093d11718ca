"""Model repos on the Hugging Face Hub: the local cache (no network) and one bounded online look-up.

Online calls go to the endpoint and carry the token the user's own huggingface_hub would use
(HF_ENDPOINT, HF_TOKEN / the token file, HF_HUB_DISABLE_IMPLICIT_TOKEN), with huggingface_hub's
session and headers and a short timeout. Callers decide about offline mode before calling.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from lora_doctor.hub.token import active_source, endpoint, hf_paths, token_sources, truthy

LOOKUP_TIMEOUT = 6.0
# huggingface_hub's rules (huggingface_hub/utils/_validators.py, `validate_repo_id`), without importing it.
REPO_NAME_RE = re.compile(r"^(\b[\w\-.]+\b/)?\b[\w\-.]{1,96}\b$")
# Repos deleted upstream -> the replacement people use now (runwayml's repos went in 2024; sd-scripts'
# README and the diffusers docs now name stable-diffusion-v1-5/stable-diffusion-v1-5).
REMOVED_REPOS = {
    "runwayml/stable-diffusion-v1-5": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "runwayml/stable-diffusion-inpainting": "stable-diffusion-v1-5/stable-diffusion-inpainting",
}


def repo_id_problem(value: str) -> str:
    """'' when `value` is a syntactically valid repo id, else why not (huggingface_hub's rules)."""
    if value.count("/") > 1:
        return "a repo id has the form 'name' or 'namespace/name' (at most one '/')"
    if not REPO_NAME_RE.match(value):
        return ("a repo id may only use letters, digits, '-', '_' and '.', must not start or end with "
                "'-' or '.', and is at most 96 characters")
    if "--" in value or ".." in value:
        return "'--' and '..' are not allowed in a repo id"
    if value.endswith(".git"):
        return "a repo id does not end with .git"
    return ""


def removed_replacement(repo_id: str) -> str | None:
    return REMOVED_REPOS.get(repo_id.lower().strip("/"))


def hub_cache(env: Mapping[str, str]) -> Path:
    """HF_HUB_CACHE (or the legacy HUGGINGFACE_HUB_CACHE), else <HF_HOME>/hub (huggingface_hub/constants.py)."""
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(name):
            return Path(env[name]).expanduser()
    return hf_paths(env).hf_home / "hub"


def cached_snapshot(env: Mapping[str, str], repo_id: str, revision: str = "main") -> Path | None:
    """The cached snapshot folder of a model repo (the one `refs/<revision>` names, else the newest)."""
    folder = hub_cache(env) / ("models--" + repo_id.replace("/", "--"))
    snapshots = folder / "snapshots"
    try:
        ref = (folder / "refs" / revision).read_text("utf-8").strip()
    except OSError:
        ref = ""
    if ref and (snapshots / ref).is_dir():
        return snapshots / ref
    try:
        found = sorted((p for p in snapshots.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    except OSError:
        return None
    return found[-1] if found else None


def cached_files(env: Mapping[str, str], repo_id: str, names: tuple[str, ...], subfolder: str = "") -> Path | None:
    """The cached snapshot (sub)folder holding every file in `names`, else None."""
    snapshot = cached_snapshot(env, repo_id)
    if snapshot is None:
        return None
    folder = snapshot / subfolder if subfolder else snapshot
    return folder if all((folder / n).is_file() for n in names) else None


@dataclass(frozen=True)
class Lookup:
    """status: ok / gated / not_found / entry_not_found / bad_token / unsendable_token / forbidden /
    rate_limited / unreachable / timeout / error. `with_token` says whether a token was sent."""

    status: str
    message: str = ""
    with_token: bool = False
    seconds: float = 0.0
    url: str = ""


def _token(env: Mapping[str, str]):
    if truthy(env, "HF_HUB_DISABLE_IMPLICIT_TOKEN"):
        return False
    src = active_source(token_sources(env), env, None)
    return src.token if src else False


def model_info(repo_id: str, env: Mapping[str, str], timeout: float | None = None) -> Lookup:
    """GET <endpoint>/api/models/<repo>/revision/main, as diffusers' from_pretrained does first."""
    return _request("GET", f"{endpoint(env)}/api/models/{repo_id}/revision/main", env, timeout)


def file_info(repo_id: str, filename: str, env: Mapping[str, str], timeout: float | None = None) -> Lookup:
    """HEAD <endpoint>/<repo>/resolve/main/<file>, as a download starts."""
    return _request("HEAD", f"{endpoint(env)}/{repo_id}/resolve/main/{filename}", env, timeout)


def _request(method: str, url: str, env: Mapping[str, str], timeout: float | None) -> Lookup:
    timeout = LOOKUP_TIMEOUT if timeout is None else timeout
    token = _token(env)
    started = time.monotonic()
    if token and not token.isascii():  # huggingface_hub fails the same way: UnicodeEncodeError in the header
        return Lookup("unsendable_token", "the token is not ASCII, so it cannot be sent in an HTTP header "
                      "(UnicodeEncodeError)", True, 0.0, url)
    try:
        from huggingface_hub.utils import build_hf_headers, get_session

        headers = build_hf_headers(token=token, library_name="lora-doctor")
        response = get_session().request(method, url, headers=headers, timeout=timeout)
    except Exception as exc:  # httpx / requests / offline errors differ between huggingface_hub versions
        seconds = time.monotonic() - started
        name, text = type(exc).__name__, " ".join(str(exc).split())[:200]
        if "timeout" in name.lower() or "timed out" in text.lower():
            return Lookup("timeout", f"no answer within {timeout:g} s", bool(token), seconds, url)
        return Lookup("unreachable", f"{name}: {text}", bool(token), seconds, url)
    seconds = time.monotonic() - started
    code = response.status_code
    error_code = response.headers.get("X-Error-Code", "")
    message = " ".join((response.headers.get("X-Error-Message") or "").split())[:200] or f"HTTP {code}"
    if code < 300:
        status = "ok"
    elif error_code == "GatedRepo":
        status = "gated"
    elif "invalid credentials" in message.lower() or "invalid user token" in message.lower():
        status = "bad_token"
    elif error_code == "EntryNotFound":
        status = "entry_not_found"
    elif error_code in ("RepoNotFound", "RevisionNotFound") or code in (401, 404):
        status = "not_found"
    elif code == 403:
        status = "forbidden"
    elif code == 429:
        status = "rate_limited"
    else:
        status = "error"
    return Lookup(status, message, bool(token), seconds, url)
