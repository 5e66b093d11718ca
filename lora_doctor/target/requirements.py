"""Read a requirements.txt (as pip would, for what matters here) and compare it with installed versions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from packaging.version import InvalidVersion, Version

SKIP_PREFIXES = ("-e", "--editable", "--index-url", "--extra-index-url", "-i", "-f", "--find-links",
                 "--pre", "--no-binary", "--only-binary", "--prefer-binary", "--trusted-host", "-c", "--constraint",
                 "--use-pep517", "--no-deps", "git+", "http://", "https://", ".", "/")


@dataclass(frozen=True)
class Pin:
    """One requirement line: the parsed requirement, its canonical name, where it was written."""

    requirement: object  # packaging.requirements.Requirement
    name: str
    source: str
    line: int

    @property
    def text(self) -> str:
        return str(self.requirement)

    @property
    def pinned_version(self) -> str | None:
        """The X of `name==X`, else None."""
        specs = list(self.requirement.specifier)
        if len(specs) == 1 and specs[0].operator in ("==", "==="):
            return specs[0].version
        return None


def canonical(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


def parse_lines(lines: list[str], source: str) -> tuple[list[Pin], list[str]]:
    """(pins, problems): requirement lines parsed; -e/-r/options skipped; bad lines reported."""
    from packaging.requirements import InvalidRequirement, Requirement

    pins, problems = [], []
    for number, raw in enumerate(lines, 1):
        line = raw.split(" #", 1)[0].split("\t#", 1)[0].strip()
        if not line or line.startswith("#") or line.startswith(SKIP_PREFIXES) or line.startswith(("-r", "--requirement")):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement as exc:
            problems.append(f"{source}:{number}: cannot parse '{line}' ({exc})")
            continue
        pins.append(Pin(req, canonical(req.name), source, number))
    return pins, problems


def read_requirements(path: Path, _depth: int = 0) -> tuple[list[Pin], list[str]]:
    """Parse `path`, following `-r other.txt` includes (relative to it, 3 levels at most)."""
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError as exc:
        return [], [f"cannot read {path}: {exc.strerror or exc}"]
    lines = text.splitlines()
    pins, problems = parse_lines(lines, str(path))
    if _depth < 3:
        for raw in lines:
            parts = raw.strip().split(None, 1)
            if len(parts) == 2 and parts[0] in ("-r", "--requirement"):
                more, bad = read_requirements(path.parent / parts[1].strip(), _depth + 1)
                pins += more
                problems += bad
    return pins, problems


def marker_environment(python_facts: Mapping[str, object]) -> dict[str, str]:
    """The PEP 508 marker values of the target interpreter, from its probed facts."""
    version = str(python_facts.get("version") or "3.10.0")
    platform = str(python_facts.get("platform") or "linux")
    system = {"win32": "Windows", "darwin": "Darwin", "cygwin": "CYGWIN"}.get(platform, platform.capitalize())
    try:
        short = ".".join(str(n) for n in Version(version).release[:2])
    except InvalidVersion:
        short = version
    return {"python_version": short, "python_full_version": version,
            "sys_platform": platform, "platform_system": system, "os_name": "nt" if platform == "win32" else "posix",
            "platform_machine": str(python_facts.get("machine") or ""), "implementation_name": "cpython",
            "platform_python_implementation": str(python_facts.get("implementation") or "CPython"),
            "platform_release": "", "platform_version": "", "implementation_version": version, "extra": ""}


def applies(pin_or_req, env: Mapping[str, str]) -> bool:
    req = getattr(pin_or_req, "requirement", pin_or_req)
    if req.marker is None:
        return True
    try:
        return bool(req.marker.evaluate(dict(env)))
    except Exception:  # an unknown marker variable: count the requirement in
        return True


def satisfies(version: str, specifier) -> bool | None:
    """Whether `version` is in the specifier set (pre-releases allowed); None if unparsable."""
    from packaging.version import InvalidVersion, Version

    try:
        return specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return None


def direction(version: str, specifier) -> str:
    """'older', 'newer' or 'newer_major' (than what the specifier asks); '' when unclear."""
    from packaging.version import InvalidVersion, Version

    try:
        have = Version(version)
    except InvalidVersion:
        return ""
    lows = [Version(s.version) for s in specifier if s.operator in ("==", ">=", ">", "~=", "===")
            and not s.version.endswith("*")]
    if any(have < low for low in lows):
        return "older"
    if lows and have.major > max(lows).major:
        return "newer_major"
    return "newer"
