"""Keep secrets out of every output: mask tokens on screen, redact them in logs and reports."""

from __future__ import annotations

import re

# Hugging Face user/org tokens, and option values that are secrets by name.
TOKEN_RE = re.compile(r"\b(hf_[A-Za-z0-9]{6,}|api_org_[A-Za-z0-9]{6,})")
SECRET_NAME = r"(?:[\w-]*_)?(?:token|key|api_key|secret|password)"
SECRET_OPTION_RE = re.compile(rf"(--{SECRET_NAME}(?:=|\s+))(\"[^\"]*\"|'[^']*'|\S+)", re.IGNORECASE)
SECRET_NAME_RE = re.compile(rf"{SECRET_NAME}$", re.IGNORECASE)
REDACTED = "[REDACTED]"


def is_secret_option(name: str) -> bool:
    """`wandb_api_key`, `huggingface_token` …: an option whose value is a secret (name without --)."""
    return bool(SECRET_NAME_RE.match(name))


def mask(token: str | None) -> str:
    """`hf_abcdefgh…wxyz` -> `hf_ab…yz`: enough to recognise, never enough to use."""
    if not token:
        return "(none)"
    token = token.strip()
    if len(token) <= 8:
        return "*" * len(token)
    head = 5 if token.startswith("hf_") else 2
    return f"{token[:head]}…{token[-2:]}"


def redact_text(text: str) -> str:
    """Replace every token and secret option value in free text."""
    text = SECRET_OPTION_RE.sub(lambda m: m.group(1) + REDACTED, text)
    return TOKEN_RE.sub(lambda m: m.group(0)[:3] + REDACTED, text)


def redact_argv(argv: list[str]) -> list[str]:
    """A command line with secret option values and tokens redacted (one token per item)."""
    out: list[str] = []
    secret_next = False
    for tok in argv:
        if secret_next:
            out.append(REDACTED)
            secret_next = False
            continue
        name, eq, _ = tok.partition("=")
        if name.startswith("--") and is_secret_option(name[2:]):
            if eq:
                out.append(name + "=" + REDACTED)
            else:
                out.append(tok)
                secret_next = True
            continue
        out.append(redact_text(tok))
    return out
