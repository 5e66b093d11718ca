"""YAML for accelerate's config file: PyYAML when the doctor has it, else the small subset
accelerate writes (nested `key: value` maps, `- item` lists, scalars, flow `[]`/`{}`)."""

from __future__ import annotations

import re


class YamlError(ValueError):
    """The text is not YAML this reader understands; str() names the line."""


def load(text: str):
    try:
        import yaml
    except ImportError:
        return parse(text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise YamlError(" ".join(str(exc).split())) from None


def scalar(raw: str):
    value = raw.strip()
    if not value or value in ("~", "null", "Null", "NULL"):
        return None
    if value[0] in "'\"":
        if len(value) < 2 or value[-1] != value[0]:
            raise YamlError(f"unterminated string {value}")
        return value[1:-1].replace("''", "'") if value[0] == "'" else value[1:-1]
    if value in ("[]", "{}"):
        return [] if value == "[]" else {}
    if value.startswith("[") and value.endswith("]"):
        return [scalar(v) for v in value[1:-1].split(",") if v.strip()]
    if value.lower() in ("true", "yes", "on"):
        return True
    if value.lower() in ("false", "no", "off"):
        return False
    if re.fullmatch(r"[-+]?\d+", value):
        return int(value)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", value):
        return float(value)
    return value


def _strip_comment(line: str) -> str:
    out, quote = [], None
    for i, ch in enumerate(line):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            break
        out.append(ch)
    return "".join(out).rstrip()


def parse(text: str):
    lines = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = _strip_comment(raw)
        if line.strip() and line.strip() not in ("---", "..."):
            lines.append((number, len(line) - len(line.lstrip(" ")), line.strip()))
    if not lines:
        return None
    value, end = _block(lines, 0, lines[0][1])
    if end != len(lines):
        raise YamlError(f"line {lines[end][0]}: unexpected indentation")
    return value


def _block(lines, i, indent):
    if lines[i][2].startswith("- ") or lines[i][2] == "-":
        items = []
        while i < len(lines) and lines[i][1] == indent and (lines[i][2].startswith("- ") or lines[i][2] == "-"):
            items.append(scalar(lines[i][2][1:]))
            i += 1
        return items, i
    mapping = {}
    while i < len(lines) and lines[i][1] == indent:
        number, _, text = lines[i]
        key, sep, rest = text.partition(":")
        if not sep or (rest and not rest.startswith(" ")):
            raise YamlError(f"line {number}: expected 'key: value', got {text!r}")
        key = scalar(key)
        i += 1
        if rest.strip():
            mapping[key] = scalar(rest)
        elif i < len(lines) and lines[i][1] > indent:
            mapping[key], i = _block(lines, i, lines[i][1])
        elif i < len(lines) and lines[i][1] == indent and lines[i][2].startswith("- "):
            mapping[key], i = _block(lines, i, indent)
        else:
            mapping[key] = None
    return mapping, i
