"""Builtin plugin: the Hugging Face token training will send (sources, format, whoami, exposure)."""

from __future__ import annotations

import sys
import threading

from lora_doctor.hookspecs import hookimpl
from lora_doctor.model import Check, Finding, Severity

CAUSE = "auth.invalid_token"
PROBE_WAIT = 10.0  # seconds to wait for the probe's huggingface_hub version; then fall back


def target_hub_version(ctx, wait: float = PROBE_WAIT):
    """(version tuple or None, version text) of huggingface_hub in the target interpreter."""
    from lora_doctor.hub.token import parse_version

    if not ctx.facts.wait(wait):  # a wait the host does not charge to the check's budget
        return None, "unknown"
    text = (ctx.facts.get().get("packages") or {}).get("huggingface_hub")
    return parse_version(text), text or "not installed"


def target_is_windows(ctx) -> bool:
    if ctx.facts.ready:
        platform = (ctx.facts.get().get("python") or {}).get("platform")
        if platform:
            return platform == "win32"
    return sys.platform == "win32"


def remove_env_command(name: str, windows: bool) -> str:
    if windows:
        return (f"Remove-Item Env:{name}; "
                f"[Environment]::SetEnvironmentVariable('{name}', $null, 'User')")
    return f"unset {name}"


def replace_fix(src, hub_version, windows: bool) -> tuple[str, str]:
    """(sentence, exact command) that puts a new token where the bad one comes from."""
    from lora_doctor.hub.token import login_command

    login = login_command(hub_version)
    if src.kind == "env":
        where = ("your PowerShell profile and the user environment variables" if windows
                 else "~/.bashrc, ~/.profile or the script that sets it")
        return (f"Then set {src.name} to the new token, or remove {src.name} (also from {where}) and log in "
                f"with `{login}` in the training venv.", remove_env_command(src.name, windows))
    return f"Then log in again with `{login}` in the training venv; it replaces {src.path}.", login


def check_token(ctx):
    """Which token wins, whether it is well-formed and valid, and whether it leaked into history."""
    from lora_doctor.hub import token as hf_auth
    from lora_doctor.hub.token import shown as mask

    env = ctx.env
    sources = hf_auth.token_sources(env)
    active = hf_auth.active_source(sources, env, None)  # the order is the same for every version
    if active is not None and not ctx.is_offline:  # ask the Hub while the probe imports torch
        threading.Thread(target=hf_auth.whoami, args=(active.token, env), daemon=True, name="whoami").start()
    hub_version, hub_text = target_hub_version(ctx)
    windows = target_is_windows(ctx)
    paths = hf_auth.hf_paths(env)
    facts = {"huggingface_hub (target)": hub_text, "HF_HOME": str(paths.hf_home),
             "token file": str(paths.token_file), "endpoint": hf_auth.endpoint(env),
             "sources": ", ".join(f"{s.label} = {mask(s.token)}" for s in sources) or "none"}
    implicit_off = hf_auth.truthy(env, "HF_HUB_DISABLE_IMPLICIT_TOKEN")
    env_offline = any(hf_auth.truthy(env, v) for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))

    if hf_auth.oidc_in_use(env, hub_version):
        yield Finding(Severity.INFO, "HF_OIDC_RESOURCE is set: huggingface_hub exchanges a CI identity token "
                      "first and uses the sources below only if that fails", facts=facts)
    yield from _upload(ctx, active)
    if active is None:
        login = hf_auth.login_command(hub_version, relogin=False)
        yield Finding(Severity.OK, "no Hugging Face token (fine for public models; gated ones need one)",
                      detail=f"Checked HF_TOKEN, HUGGING_FACE_HUB_TOKEN and {paths.token_file}. For a gated "
                             f"model, log in with `{login}` in the training venv.", facts=facts)
        for src in sources:
            if src.kind == "env" and not src.token:
                yield Finding(Severity.INFO, f"{src.name} is set but empty, so it is ignored", facts=facts)
        yield from _stored(sources, None, hub_version)
        return

    token = active.token
    facts["active"] = f"{active.label} ({mask(token)})"
    others = [s for s in sources if s is not active and s.kind != "stored" and s.token
              and hf_auth.digest(s.token) != hf_auth.digest(token)]
    for other in others:
        yield Finding(Severity.INFO, f"{active.label} overrides {other.label} (a different token)",
                      detail="huggingface_hub uses HF_TOKEN, then HUGGING_FACE_HUB_TOKEN, then the token file; "
                             "`hf auth login` does not change the environment variable.", facts=facts)

    # Offline checks of the value as written.
    for problem in hf_auth.format_problems(active.raw):
        severity = {"error": Severity.ERROR, "warn": Severity.WARN, "info": Severity.INFO}[problem.severity]
        if severity == Severity.ERROR and (env_offline or implicit_off):
            severity = Severity.WARN  # not sent while offline / without implicit tokens
        fix, command = replace_fix(active, hub_version, windows)
        yield Finding(severity, f"the token from {active.label} ({mask(token)}) {problem.summary}",
                      fix=f"{problem.fix} {fix}" if severity >= Severity.WARN else "",
                      fix_command=command if severity >= Severity.WARN else "",
                      cause=CAUSE if severity >= Severity.WARN else None, facts=facts)

    # Online validity.
    if ctx.is_offline:
        reason = "--offline" if ctx.offline else "HF_HUB_OFFLINE"
        yield Finding(Severity.INFO, f"token {mask(token)} from {active.label}: validity not checked ({reason})",
                      facts=facts)
    else:
        result = hf_auth.whoami(token, env)
        facts["whoami"] = f"{result.status} in {result.seconds:.2f} s"
        yield from _verdict(result, active, token, hub_version, windows, implicit_off, facts)

    yield from _exposure(ctx, token, hub_version)
    yield from _stored(sources, active, hub_version)


def _verdict(result, active, token, hub_version, windows, implicit_off, facts):
    from lora_doctor.hub.token import TOKENS_PAGE
    from lora_doctor.hub.token import shown as mask

    where = f"token {mask(token)} from {active.label}"
    if result.status == "valid":
        role = {"fineGrained": "fine-grained"}.get(result.role, result.role or "unknown role")
        detail = ""
        if result.role == "fineGrained":
            detail = ("A fine-grained token reads gated models only with the permission 'Read access to contents "
                      "of all public gated repos you can access'.")
        yield Finding(Severity.OK, f"{where} is valid: user {result.user}, {role} token"
                      + (f" '{result.token_name}'" if result.token_name else ""), detail=detail, facts=facts)
        return
    if result.bad:
        fix, command = replace_fix(active, hub_version, windows)
        state = "expired" if result.status == "expired" else "invalid (revoked, expired or mistyped)"
        severity = Severity.WARN if implicit_off else Severity.ERROR
        detail = ("The Hub answers 401 to every request that carries it, public downloads included: sd-scripts "
                  "fails at the tokenizer download (openai/clip-vit-large-patch14) with 'Invalid credentials in "
                  "Authorization header'.")
        if implicit_off:
            detail = "HF_HUB_DISABLE_IMPLICIT_TOKEN is set, so public downloads do not send it; gated ones fail."
        yield Finding(severity, f"{where} is {state}: the Hub rejects it", detail=detail,
                      fix=f"Create a new token at {TOKENS_PAGE}. {fix} For public models only, HF_HUB_DISABLE_IMPLICIT_TOKEN=1 also avoids sending it.",
                      fix_command=command, cause=CAUSE, facts=facts)
        return
    if result.status == "unsendable":
        return  # the format finding already says so
    if result.status == "rate_limited":
        yield Finding(Severity.INFO, f"{where}: not verified ({result.message})", facts=facts)
        return
    yield Finding(Severity.WARN, f"{where}: validity unknown, {result.message}",
                  detail=f"lora-doctor asked {facts['endpoint']}/api/whoami-v2 as huggingface_hub does; training "
                         "needs the Hub for the tokenizer unless it is cached.",
                  fix="Check the network/proxy, or HF_ENDPOINT if you use a mirror; run again with --offline to "
                      "skip online checks.", facts=facts)


def _exposure(ctx, token, hub_version):
    """The active token in shell history files or in the wrapped command line."""
    from lora_doctor.hub import token as hf_auth
    from lora_doctor.hub import shell_history as history_scan
    from lora_doctor.hub.token import TOKENS_PAGE
    from lora_doctor.hub.token import shown as mask

    revoke = (f"Treat it as leaked: revoke it at {TOKENS_PAGE}, create a new one, log in again, then delete "
              "the line(s) from the file.")
    for hit in history_scan.scan(token, ctx.env):
        lines = ", ".join(str(n) for n in hit.lines[:10]) + (" …" if len(hit.lines) > 10 else "")
        plural = "lines" if len(hit.lines) > 1 else "line"
        command = ""
        if sys.platform != "win32" and len(hit.lines) <= 10:
            inplace = "-i ''" if sys.platform == "darwin" else "-i"
            command = f"sed {inplace} '{';'.join(f'{n}d' for n in hit.lines)}' '{hit.path}'"
        yield Finding(Severity.WARN, f"your active token {mask(token)} is in {hit.shell} history: {hit.path} "
                      f"{plural} {lines}",
                      detail="Typed as `login --token hf_…` or `HF_TOKEN=hf_…`, a token stays in the history "
                             "file, readable by anything that runs as you and copied into backups.",
                      fix=revoke, fix_command=command)
    argv = list(ctx.launch.argv) if ctx.launch else []
    positions = history_scan.argv_positions(token, argv)
    if positions:
        yield Finding(Severity.WARN, f"the training command line contains your active token {mask(token)} "
                      f"(argument {', '.join(str(p + 1) for p in positions)})",
                      detail="Command lines are visible to other users (ps) and end up in shell history and logs.",
                      fix=revoke.replace(", then delete the line(s) from the file", "")
                      + f" Pass it through `{hf_auth.login_command(hub_version, relogin=False)}` or HF_TOKEN instead.")


def _upload(ctx, active):
    """--huggingface_repo_id uploads after training with --huggingface_token or the active token."""
    from lora_doctor.hub import token as hf_auth
    from lora_doctor.hub import shell_history as history_scan
    from lora_doctor.hub.token import shown as mask

    repo = ctx.option("huggingface_repo_id")
    option = ctx.option("huggingface_token")
    option = option if isinstance(option, str) and option.strip() else None
    argv = list(ctx.launch.argv) if ctx.launch else []
    if option and not (active and hf_auth.digest(hf_auth.clean(option) or "") == hf_auth.digest(active.token)) \
            and history_scan.argv_positions(option, argv):
        yield Finding(Severity.WARN, f"--huggingface_token {mask(option)} is on the command line, visible to other "
                      "users (ps), in shell history and in logs",
                      fix="Put huggingface_token in the --config_file TOML instead, or drop it and log in; revoke "
                          f"this token at {hf_auth.TOKENS_PAGE} if the history or logs were shared.")
    if not isinstance(repo, str) or not repo:
        return
    token = hf_auth.clean(option) if option else (active.token if active else None)
    where = "--huggingface_token" if option else (active.label if active else "")
    if token is None:
        yield Finding(Severity.WARN, f"--huggingface_repo_id {repo} uploads after training, but there is no token",
                      fix="Log in before training, or pass --huggingface_token in the --config_file TOML.")
        return
    if ctx.is_offline:
        return
    result = hf_auth.whoami(token, ctx.env)
    if result.bad and option:  # a bad active token is already an error below
        yield Finding(Severity.WARN, f"the upload to {repo} after training will be refused: the token from {where} "
                      f"({mask(token)}) is {result.status}", cause=CAUSE,
                      fix=f"Create a write token at {hf_auth.TOKENS_PAGE} and use it for the upload.")
    elif result.status == "valid" and result.role == "read":
        yield Finding(Severity.WARN, f"the upload to {repo} after training will be refused: the token from {where} "
                      f"({mask(token)}) is a read token",
                      fix=f"Create a write (or fine-grained with write access to {repo}) token at "
                          f"{hf_auth.TOKENS_PAGE}.")


def _stored(sources, active, hub_version):
    """stored_tokens entries (for `hf auth switch`): only what is wrong with them offline."""
    from lora_doctor.hub import token as hf_auth
    from lora_doctor.hub.token import shown as mask

    for src in sources:
        if src.kind != "stored" or not src.token:
            continue
        if active is not None and hf_auth.digest(src.token) == hf_auth.digest(active.token):
            continue
        problems = [p for p in hf_auth.format_problems(src.raw) if p.severity == "error"]
        for problem in problems:
            yield Finding(Severity.INFO, f"{src.label} ({mask(src.token)}) {problem.summary}; it is not in use",
                          fix="Remove it if you do not need it:",
                          fix_command=hf_auth.logout_command(hub_version, src.name))


@hookimpl
def lora_doctor_register_checks(register):
    """The Hugging Face token: every source, which one wins, format, whoami validity, exposure."""
    register(Check(id="auth.token", title="Hugging Face token", run=check_token, timeout=25.0))
