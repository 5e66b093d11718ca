"""Builtin plugin: huggingface.co credentials left in git's credential helpers."""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

from lora_doctor.hookspecs import hookimpl
from lora_doctor.model import Check, Finding, Severity

CAUSE = "auth.stale_git_credential"
WHY_IT_MATTERS = ("huggingface_hub downloads (the model, the tokenizer) never read git credentials; git does: "
                  "`git clone`/`git push` of huggingface.co repos, and GUIs or scripts that clone models with "
                  "git, send this token and fail with 401.")


def _hosts(env) -> list[str]:
    from lora_doctor.hub.token import endpoint

    hosts = ["huggingface.co"]
    custom = (urlsplit(endpoint(env)).hostname or "").lower()
    if custom and custom not in hosts:
        hosts.append(custom)
    return hosts


def _where(cred) -> str:
    if cred.helper == "store":
        return f"{cred.path} line {cred.line}"
    if cred.helper == "cmdkey":
        return f"Windows Credential Manager ({cred.target})"
    return "git credential fill"


def removal(cred, helper_names, windows: bool) -> tuple[str, str]:
    """(fix sentence, exact command) that removes this credential from where it is stored."""
    from lora_doctor.hub.gitcred import helper_word

    user = cred.username or "hf_user"
    words = [helper_word(h) for h in helper_names]
    reject = (f"printf 'protocol=https\\nhost={cred.host}\\nusername={user}\\n\\n' | git credential reject")
    if cred.helper == "store":
        text = f"Delete line {cred.line} of {cred.path} (the https://{user}:…@{cred.host} entry)"
        if "store" in words and not windows:
            return text + ", or let git erase it:", reject
        if windows:
            return text + " in a text editor.", ""
        inplace = "-i ''" if sys.platform == "darwin" else "-i"
        return text + ":", f"sed {inplace} '{cred.line}d' '{cred.path}'"
    if windows and (set(words) & {"manager", "manager-core", "wincred"} or cred.helper == "cmdkey"):
        target = cred.target or f"LegacyGeneric:target=git:https://{cred.host}"
        return "Remove it from the Windows Credential Manager:", f"cmdkey /delete:{target}"
    helpers = ", ".join(words) or "the configured helpers"
    return f"Ask every configured helper ({helpers}) to erase it:", reject


def check_credentials(ctx):
    """Git credential helpers and the huggingface.co credentials they hold, against the active token."""
    from lora_doctor.hub import gitcred
    from lora_doctor.hub import token as hf_auth

    env = ctx.env
    windows = sys.platform == "win32"
    hosts = _hosts(env)
    git = gitcred.find_git(env)
    facts: dict[str, object] = {"hosts": ", ".join(hosts)}
    names: list[str] = []
    if git is None:
        yield Finding(Severity.INFO, "git is not installed: no git credential helpers to check", facts=facts)
    else:
        found = gitcred.helpers(git, env, hosts[0], cwd=str(ctx.cwd))
        names = found.names
        facts["helpers"] = ", ".join(names) or "none"
        if found.timed_out:
            yield Finding(Severity.WARN, "`git config` did not answer within its time limit",
                          fix="Check that git works: run `git config --list`.", facts=facts)
        for helper in names:
            missing = gitcred.helper_missing(helper, git, env)
            if missing:
                word = gitcred.helper_word(helper)
                yield Finding(Severity.WARN, f"git credential helper '{helper}' is configured but {missing} is "
                              "not installed: every git clone/push prints an error",
                              detail="Git Credential Manager 2.3 removed the old 'manager-core' name." if
                              word == "manager-core" else "",
                              fix="Point credential.helper at an installed helper (Git Credential Manager is 'manager').",
                              fix_command="git config --global credential.helper manager" if word == "manager-core"
                              else "", facts=facts)

    creds: list = []
    for path in gitcred.store_files(names, env):
        creds += gitcred.store_entries(path, set(hosts))
    if git is not None and names:
        for host in hosts:
            result = gitcred.fill(git, env, host, cwd=str(ctx.cwd))
            facts[f"git credential fill ({host})"] = f"{result.status} in {result.seconds:.2f} s"
            if result.status == "timeout":
                yield Finding(Severity.WARN, f"{result.message} for https://{host}: a credential helper "
                              f"({', '.join(names)}) hangs or waits for a dialog",
                              detail="lora-doctor stopped it. A `git clone` of a huggingface.co repo would hang "
                                     "the same way.",
                              fix="Run `git credential fill` by hand (type protocol=https, host=" + host + ", an empty "
                                  "line) to see which helper waits, and fix or remove it from credential.helper.",
                              facts=facts)
                break  # the same helpers would hang for the next host too
            elif result.status == "error":
                yield Finding(Severity.INFO, f"`git credential fill` for https://{host} failed: {result.message}",
                              facts=facts)
            elif result.status == "found":
                cred = result.credential
                same = next((c for c in creds if c.password == cred.password and c.host == host), None)
                if same is None:
                    creds.append(cred)
    targets, problem = gitcred.cmdkey_targets(env, set(hosts))
    if problem:
        facts["cmdkey"] = problem
    if targets and not any(c.helper == "fill" for c in creds):
        for target in targets:
            yield Finding(Severity.INFO, f"the Windows Credential Manager holds {target} (git credential fill "
                          "did not return it)", fix="Remove it if you no longer use it:",
                          fix_command=f"cmdkey /delete:{target}", facts=facts)
    elif targets:
        creds = [gitcred.Stored("cmdkey", c.username, c.password, c.host, target=targets[0])
                 if c.helper == "fill" else c for c in creds]

    if not creds:
        yield Finding(Severity.OK, "no huggingface.co credential stored in git"
                      + (f" (helpers: {', '.join(names)})" if names else " (no credential helper configured)"),
                      facts=facts)
        return

    active = hf_auth.active_source(hf_auth.token_sources(env), env, None)
    active_digest = hf_auth.digest(active.token) if active else None
    for cred in creds:
        yield from _judge(ctx, cred, active, active_digest, names, windows, facts)


def _judge(ctx, cred, active, active_digest, names, windows, facts):
    from lora_doctor.hub import token as hf_auth
    from lora_doctor.hub.token import shown as mask

    where = _where(cred)
    label = f"git credential for {cred.host} ({mask(cred.password)}, {where})"
    fix_text, command = removal(cred, names, windows)
    verdict = None if ctx.is_offline else hf_auth.whoami(cred.password, ctx.env)
    same = active_digest is not None and hf_auth.digest(cred.password) == active_digest
    if verdict is not None and verdict.bad:
        state = "expired" if verdict.status == "expired" else "invalid"
        relation = "it is also the active token" if same else (
            f"the active token is {mask(active.token)} from {active.label}" if active else "there is no active token")
        # A warning: it breaks `git clone`/`git push` of Hub repos, never the training itself.
        yield Finding(Severity.WARN, f"stale {label}: the Hub says it is {state}; {relation}",
                      detail=WHY_IT_MATTERS, fix=f"{fix_text} (If you clone Hub repos with git, log in again with --add-to-git-credential.)",
                      fix_command=command, cause=CAUSE, facts=facts)
        return
    if same:
        state = f"valid (user {verdict.user})" if verdict and verdict.status == "valid" else "not verified"
        yield Finding(Severity.OK, f"{label} is the active token, {state}", facts=facts)
        return
    relation = (f"differs from the active token {mask(active.token)} ({active.label})" if active
                else "while huggingface_hub has no token")
    if verdict is not None and verdict.status == "valid":
        yield Finding(Severity.WARN, f"{label} {relation}; it is valid (user {verdict.user})",
                      detail=WHY_IT_MATTERS.replace("fail with 401", "may act as another account or token")
                      + " huggingface_hub itself does not use it.",
                      fix=f"If you replaced this token on purpose: {fix_text[0].lower()}{fix_text[1:]}",
                      fix_command=command, cause=CAUSE, facts=facts)
        return
    unknown = "offline: not verified" if verdict is None else "validity unknown"
    reason = "" if verdict is None else f"Its validity could not be checked: {verdict.message}. "
    yield Finding(Severity.WARN, f"{label} {relation} ({unknown})", detail=reason + WHY_IT_MATTERS,
                  fix=f"If it is an old token: {fix_text[0].lower()}{fix_text[1:]}", fix_command=command,
                  cause=CAUSE, facts=facts)


@hookimpl
def lora_doctor_register_checks(register):
    """Git credential helpers and stale huggingface.co credentials stored in them."""
    register(Check(id="auth.git_credentials", title="Git credentials for huggingface.co", run=check_credentials,
                   timeout=25.0))
