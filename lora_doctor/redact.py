"""Keep secrets out of every output: mask tokens on screen, redact them in logs, reports and the history.

What counts as a secret (the same rules for text, bytes, a command line and a JSON object):

- a Hugging Face token, `hf_…` or `api_org_…`, as a word of its own, right after a URL-encoded
  character (`?token%3Dhf_…`, `%22hf_…`) or an ANSI colour code (`\\x1b[1mhf_…`); one of 30 or more
  characters wherever it stands;
- the value of every option or variable whose name ends with key, token, secret, password or
  passwd (any case, `_` or `-`): `--wandb_api_key=V`, `--wandb_api_key V`, `--wandb-api-key V`,
  `--apikey=V`, `WANDB_API_KEY=V`, `?token=V`, `token%3DV`, `'wandb_api_key': 'V'`;
- the password of a URL: `https://user:V@host/…`.

`keep_tokens`, `max_token_length` and the like do not end with such a word and are kept.

Speed (the run log goes through `redact_bytes`): five passes, each one compiled regex that starts
with a fixed byte (`-`, `:`, `=`, `%`, `_`), so the regex engine skips to it at memchr speed and
the checks behind it are look-behinds; the two passes that can match on every line (`_` for a token,
`=` for NAME=V) replace by a fixed string in C (`re.sub` with a literal); the others cut the text with
`re.split` and insert `[REDACTED]` with `map`: no Python code runs per match or per line.
"""

from __future__ import annotations

import re
from itertools import repeat

REDACTED = "[REDACTED]"
SECRET_WORDS = ("key", "token", "secret", "password", "passwd")
# dict fields whose names end with a secret word but hold none (the history's own lookup keys)
NOT_SECRET_FIELDS = frozenset({"key", "script_key", "output_key", "sort_key", "cache_key", "primary_key"})

_WORDS = "(?i:" + "|".join(SECRET_WORDS) + ")"
_LAST = "[yYnNtTdD]"  # the last letter of every secret word: a one-byte look-behind fails fast


def _behind(*forms: str) -> str:
    """Look-behinds (any case) for every secret word in every form, e.g. '{}=' -> (?<=key=)|…"""
    return "(?i:" + "|".join(f"(?<={form.format(word)})" for word in SECRET_WORDS for form in forms) + ")"


# the value of a secret option: quoted, or up to a blank, a quote or punctuation that ends it
_DONE = r"(?!(?:hf_|api_org_)?\[REDACTED\])"  # already redacted: leave it (redaction is idempotent)
_NOT_A_TOKEN = r"(?!(?:hf|api_org)_[A-Za-z0-9]{6})"  # `token=hf_…`: the token rule keeps `hf_`
_VALUE = (_DONE + r"""(?:"[^"\r\n]*"|'[^'\r\n]*'|[^ \t\r\n\f\v"'&,;<>()\[\]{}\\\x00-\x1f\x7f]+)""")


def _token_rule() -> str:
    sides = []
    for prefix in ("hf_", "api_org_"):
        sides.append(f"(?<={prefix})(?:(?<![A-Za-z0-9_]{prefix})|(?<=%[0-9A-Fa-f]{{2}}{prefix})"
                     f"|(?<=[0-9;\\[]m{prefix})|(?=[A-Za-z0-9]{{30}}))")
    return "_(?:" + "|".join(sides) + ")[A-Za-z0-9]{6,}"


# (pattern, literal, gates): with a literal, the whole match is replaced by it; without, the
# pattern's one group is what is kept before the secret, and [REDACTED] follows it. `gates`: single
# characters one of which every match holds (a memchr each, ~10x faster than the regex scan), or
# None. Order matters: an option's value is taken whole (`--hf_token hf_x` -> `--hf_token
# [REDACTED]`) before the token rule.
_RULES: list[tuple[str, str | None, str | None]] = [
    # --NAME VALUE (separate word; the = form is the NAME=V rule)
    (rf"(--[A-Za-z][A-Za-z0-9_-]*?{_WORDS}[ \t]+)(?!--){_VALUE}", None, "-"),
    # 'NAME': 'V' (a printed dict) and scheme://user:V@host
    (r"""(:(?:(?<=[yYnNtTdD]["']:)""" + _behind('{}":', "{}':") + r"""[ \t]?["']|//[^ \t\r\n/@:"'<>]*:))"""
     + _DONE + r"""(?:(?<=["'])[^"'\r\n]+(?=["'])|(?<=:)[^ \t\r\n/@"'<>]+(?=@))""", None, "@\"'"),
    # NAME=V: --option=V, ENV_VAR=V, ?query=V, name='V'
    (rf"=(?<={_LAST}=)" + _behind("{}=") + _NOT_A_TOKEN + _VALUE, "=" + REDACTED, None),
    # NAME%3DV (URL-encoded)
    (rf"(%3[dD])(?<={_LAST}%3[dD])" + _behind("{}%3d") + _NOT_A_TOKEN + _VALUE, None, None),
    # hf_… / api_org_… tokens
    (_token_rule(), "_" + REDACTED, None),
]
_TEXT_RULES = [(re.compile(p), lit, tuple(gates or "")) for p, lit, gates in _RULES]
_BYTES_RULES = [(re.compile(p.encode()), None if lit is None else lit.encode(), tuple(c.encode() for c in gates or ""))
                for p, lit, gates in _RULES]
_REDACTED_B = REDACTED.encode()


def _apply(data, rules, redacted, empty):
    for rx, literal, gates in rules:
        if gates and not any(gate in data for gate in gates):
            continue
        if literal is not None:
            data = rx.sub(literal, data)  # no match: the same object back, no copy
            continue
        parts = rx.split(data)
        if len(parts) > 1:
            parts[1::2] = map(type(data).__add__, parts[1::2], repeat(redacted, len(parts) // 2))
            data = empty.join(parts)
    return data


def redact_text(text: str) -> str:
    """Replace every token and secret value in free text (idempotent)."""
    return _apply(text, _TEXT_RULES, REDACTED, "")


def redact_bytes(data: bytes) -> bytes:
    """redact_text on raw bytes, at C speed (undecodable bytes kept as they are); the same object
    back when there is nothing to redact."""
    return _apply(data, _BYTES_RULES, _REDACTED_B, b"")


SPAN_CONTEXT = 16  # bytes before a match that its rule looks at (`%3D` + `api_org_`, `\x1b[1m` + `hf_`)


def secret_spans(data: bytes, start: int, end: int):
    """(start, end) of every secret in data[start:end], with the text before it that its rule looks
    at: a line cut inside one of these would let (a part of) a secret through."""
    for rx, _, _ in _BYTES_RULES:
        for m in rx.finditer(data, start, end):
            yield max(0, m.start() - SPAN_CONTEXT), m.end()


def is_secret_option(name: str) -> bool:
    """`wandb_api_key`, `huggingface_token`, `apikey`, `--wandb-api-key`, `HF_TOKEN`: a name whose
    value is a secret (leading dashes ignored)."""
    return str(name).lstrip("-").lower().endswith(SECRET_WORDS)


def mask(token: str | None) -> str:
    """`hf_abcdefgh…wxyz` -> `hf_ab…yz`: enough to recognise, never enough to use."""
    if not token:
        return "(none)"
    token = token.strip()
    if len(token) <= 8:
        return "*" * len(token)
    head = 5 if token.startswith("hf_") else 2
    return f"{token[:head]}…{token[-2:]}"


def redact_argv(argv: list[str]) -> list[str]:
    """A command line with secret option values redacted, in both forms (`--name=V`, `--name V`),
    and tokens, NAME=V and URL passwords in every other item."""
    out: list[str] = []
    secret_next = False
    for tok in argv:
        tok = str(tok)
        if secret_next and not tok.startswith("--"):
            out.append(REDACTED)
            secret_next = False
            continue
        secret_next = False
        name, eq, _ = tok.partition("=")
        if name.startswith("--") and is_secret_option(name):
            if eq:
                out.append(name + "=" + REDACTED)
            else:
                out.append(tok)
                secret_next = True
            continue
        out.append(redact_text(tok))
    return out


def redact_obj(obj):
    """A copy of a JSON-able object with every secret redacted in its values, ready to serialize:
    strings through redact_text, lists of strings as a command line (redact_argv), the value of a
    field named like a secret (`wandb_api_key`, `token`) replaced. Objects json cannot write become
    their (redacted) str(), as json.dumps(default=str) would write them."""
    if isinstance(obj, str):
        return redact_text(obj)
    if obj is None or isinstance(obj, (bool, int, float)):
        return obj
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            name = str(key)
            if (value is not None and not isinstance(value, (dict, list, tuple, bool))
                    and is_secret_option(name) and name.lower() not in NOT_SECRET_FIELDS):
                out[key] = REDACTED
            else:
                out[key] = redact_obj(value)
        return out
    if isinstance(obj, (list, tuple)):
        if obj and all(isinstance(item, str) for item in obj):
            return redact_argv(list(obj))
        return [redact_obj(item) for item in obj]
    return redact_text(str(obj))
