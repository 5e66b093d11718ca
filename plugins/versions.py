"""Builtin plugin: the target's packages against the sd-scripts checkout's pins and known-bad combinations."""

from __future__ import annotations

from functools import lru_cache

from lora_doctor.hookspecs import hookimpl
from lora_doctor.model import Check, Finding, Severity

SEVERITY = {"error": Severity.ERROR, "warn": Severity.WARN, "info": Severity.INFO, "ok": Severity.OK}
KEY_PACKAGES = ("torch", "transformers", "diffusers", "accelerate", "huggingface-hub")
PYTORCH_INDEX = "https://download.pytorch.org/whl/"


@lru_cache(maxsize=1)
def rules() -> dict:
    """The known-bad version combinations shipped in lora_doctor/data/known_bad_versions.toml."""
    from importlib import resources

    from lora_doctor.tomlcompat import loads

    text = resources.files("lora_doctor.data").joinpath("known_bad_versions.toml").read_text("utf-8")
    return loads(text)


class Target:
    """What is installed in the target and what it should have: versions, declared requirements, pins."""

    def __init__(self, ctx):
        from lora_doctor.target.requirements import canonical, marker_environment, parse_lines, read_requirements

        facts = ctx.facts.get()
        self.ctx = ctx
        self.ok = bool(facts.get("probe", {}).get("ok"))
        self.error = facts.get("probe", {}).get("error") or ""
        self.python_facts = facts.get("python", {})
        self.windows = self.python_facts.get("platform") == "win32"
        self.torch = facts.get("torch", {})
        if "distributions" in facts:  # facts given whole (tests, `lora-doctor diff`): no query
            dists, self.requires, self.query_error = dict(facts["distributions"]), dict(facts.get("requires", {})), ""
        elif self.ok:
            from lora_doctor.target.packages import query

            got = query(ctx.python)
            dists, self.requires, self.query_error = got["dists"], got["requires"], got["error"]
        else:
            dists, self.requires, self.query_error = {}, {}, ""
        self.versions = {canonical(k): v for k, v in dists.items() if v}
        self.versions.update({canonical(k): v for k, v in (facts.get("packages") or {}).items() if v})
        self.markers = marker_environment(self.python_facts)
        req = ctx.sd_scripts_dir / "requirements.txt" if ctx.sd_scripts_dir else None
        if req is not None and req.is_file():
            self.pins, self.problems = read_requirements(req)
            self.source, self.checkout = str(req), True
        else:
            fallback = rules()["fallback"]
            self.pins, self.problems = parse_lines(fallback["requirements"], "fallback")
            self.source, self.checkout = fallback["source"], False
        self.pin_by_name = {p.name: p for p in self.pins}

    def version(self, name: str) -> str | None:
        from lora_doctor.target.requirements import canonical

        return self.versions.get(canonical(name))

    def quote(self, word: str) -> str:
        from lora_doctor.launch.edit import quote

        return quote(word, "win32" if self.windows else "posix")

    def python_cmd(self) -> str:
        from lora_doctor.target.find import shell_python

        return shell_python(self.ctx.python, "win32" if self.windows else None)

    def pip(self, *args: str) -> str:
        return f"{self.python_cmd()} -m pip install " + " ".join(self.quote(a) for a in args)

    def reinstall_pins(self, names=()) -> str:
        """The pinned install: the checkout's requirements.txt, else the named packages' pins."""
        if self.checkout:
            folder = str(self.ctx.sd_scripts_dir)
            cd = f'cd "{folder}"' if self.windows else f"cd {self.quote(folder)}"  # PowerShell has no `cd /d`
            return f"{cd}\n{self.python_cmd()} -m pip install -r requirements.txt"
        specs = [self.pin_by_name[n].text if n in self.pin_by_name else n for n in names]
        return self.pip(*specs) if specs else ""


def check_versions(ctx):
    """Installed packages vs the checkout's requirements.txt, combinations and options that need packages."""
    t = Target(ctx)
    if not t.ok:
        yield Finding(Severity.WARN, f"cannot read the target's packages: {t.error}",
                      fix="Point --python at the interpreter that runs training.")
        return
    if not t.checkout:
        yield Finding(Severity.INFO, f"no sd-scripts checkout found: compared with {t.source}",
                      fix="Pass --sd-scripts DIR (or run the command from the checkout) to compare with its own pins.")
    reported: set[str] = set()
    found = []
    for finder in (combinations, torch_pairs, option_packages, pin_findings, declared):
        for f in finder(t, reported):
            found.append(f)
    yield from found
    for problem in t.problems[:5]:
        yield Finding(Severity.WARN, f"requirements line not understood: {problem}",
                      fix="Fix the line, or reinstall sd-scripts' original requirements.txt (git checkout requirements.txt).")
    if t.query_error:
        yield Finding(Severity.INFO, f"could not list every installed package of the target ({t.query_error}); "
                      "checked the main ones only")
    if not any(f.severity >= Severity.WARN for f in found):
        have = ", ".join(f"{n} {t.version(n)}" for n in KEY_PACKAGES if t.version(n))
        where = "the checkout's requirements.txt" if t.checkout else "the pins of sd-scripts v0.10.1"
        yield Finding(Severity.OK, f"packages match {where}" + (f": {have}" if have else ""),
                      facts={"compared with": t.source})


def combinations(t: Target, reported: set):
    from packaging.specifiers import SpecifierSet

    from lora_doctor.target.requirements import satisfies

    for rule in rules().get("combination", []):
        values = {}
        for name, spec in rule["when"].items():
            have = t.version(name)
            if have is None or not satisfies(have, SpecifierSet(spec)):
                break
            values[name] = have
        else:
            pin_text = ""
            ok = True
            for name, spec in rule.get("pin", {}).items():
                pin = t.pin_by_name.get(name)
                pinned = pin.pinned_version if pin else None
                if pinned is None or not satisfies(pinned, SpecifierSet(spec)):
                    ok = False
                    break
                pin_text = f"{name}=={pinned}"
            if not ok:
                continue
            if rule["severity"] == "error":  # a warning does not replace the pin comparison
                reported.update(values)
            names = list(values)
            yield Finding(SEVERITY[rule["severity"]], rule["summary"].format(pin=pin_text, **values),
                          detail=rule.get("detail", "").strip(), fix=rule["fix"],
                          fix_command=t.reinstall_pins(names), cause=rule["cause"],
                          facts={"compared with": t.source})


def where_pins(t: Target) -> str:
    return ("Run the checkout's requirements.txt with the training Python (not a blind --upgrade)." if t.checkout
            else "Install the pinned versions with the training Python (not a blind --upgrade).")


def torch_pairs(t: Target, reported: set):
    """torchvision and xformers are built for one torch release each."""
    from packaging.version import InvalidVersion, Version

    torch = t.version("torch")
    if not torch:
        return
    try:
        tv = Version(torch)
    except InvalidVersion:
        return
    local = tv.local or ""
    index = PYTORCH_INDEX + (local if local.startswith(("cu", "rocm")) else "cpu")
    vision = t.version("torchvision")
    if vision:
        want = rules()["torchvision"].get(f"{tv.major}.{tv.minor}")
        have = Version(vision)
        wrong_build = bool(have.local and local and have.local != local)
        if (want and f"{have.major}.{have.minor}" != want) or wrong_build:
            reported.add("torchvision")
            why = f"torch {torch} needs torchvision {want}.x" if want else f"torch is {torch}"
            yield Finding(Severity.ERROR, f"torchvision {vision} does not match torch {torch}",
                          detail=why + ("; the two are different builds (+" + have.local + " vs +" + local + ")"
                                        if wrong_build else "") + ". Symptom: 'operator torchvision::nms does not exist'.",
                          fix="Install torch and torchvision together from the same index.",
                          fix_command=t.pip(f"torch=={tv.public}", f"torchvision=={want}.*" if want else "torchvision",
                                            "--index-url", index),
                          cause="versions.torch_torchvision_mismatch")
    xformers = t.version("xformers")
    wants_xformers = bool(t.ctx.option("xformers"))
    if xformers:
        built = torch_for_xformers(xformers)
        if built and not torch_matches(tv, built):
            reported.add("xformers")
            severity = Severity.ERROR if wants_xformers else Severity.WARN
            yield Finding(severity, f"xformers {xformers} was built for torch {built.rstrip('+')}, but torch is {torch}",
                          detail="xFormers can't load its C++/CUDA extensions; --xformers then fails at attention.",
                          fix="Install the xformers built for this torch (from the PyTorch index, so torch stays), "
                              "or use --sdpa instead of --xformers.",
                          fix_command=xformers_install(t, tv, index), cause="versions.xformers_missing")
    elif wants_xformers:
        reported.add("xformers")
        cpu = not t.torch.get("cuda_build") and "cpu" in local
        yield Finding(Severity.ERROR, "--xformers is set but xformers is not installed",
                      detail="xformers needs a CUDA build of torch; this torch is a CPU build." if cpu else "",
                      fix="Install the xformers built for this torch, or replace --xformers with --sdpa "
                          "(PyTorch's own attention, no extra package).",
                      fix_command=xformers_install(t, tv, index) or "", cause="versions.xformers_missing")


def torch_for_xformers(version: str) -> str | None:
    from packaging.version import InvalidVersion, Version

    table = rules()["xformers"]
    try:
        public = Version(version).public
    except InvalidVersion:
        return None
    if public in table:
        return table[public]
    try:
        if Version(public) > Version("0.0.35"):
            return "2.10.0+"
    except InvalidVersion:
        pass
    return None


def torch_matches(torch, built: str) -> bool:
    from packaging.version import Version

    if built.endswith("+"):
        return Version(torch.base_version) >= Version(built[:-1])
    return torch.base_version == Version(built).base_version


def xformers_install(t: Target, torch, index: str) -> str:
    matching = [x for x, b in rules()["xformers"].items() if torch_matches(torch, b)]
    if not matching:
        return ""
    return t.pip(f"xformers=={matching[-1]}", "--index-url", index)


def optimizer_package(opt: str) -> tuple[str, str | None] | None:
    """(package, oldest version with the class) for an --optimizer_type, or None (torch built-in)."""
    low = opt.lower()
    if "." in opt:
        pkg = rules()["modules"].get(opt.split(".")[0])
        return (pkg, None) if pkg else None
    for entry in rules().get("optimizer", []):
        if (low in entry.get("name", ()) or (entry.get("suffix") and low.endswith(entry["suffix"]))
                or (entry.get("prefix") and low.startswith(entry["prefix"]))):
            return entry["package"], entry.get("min")
    return None


def option_packages(t: Target, reported: set):
    """Options of the command that import an extra package: optimizer, --log_with, network module."""
    from packaging.version import InvalidVersion, Version

    ctx = t.ctx
    opt = ctx.option("optimizer_type") or ("AdamW8bit" if ctx.option("use_8bit_adam") else
                                            "Lion" if ctx.option("use_lion_optimizer") else "")
    need = optimizer_package(opt) if isinstance(opt, str) and opt else None
    if need:
        pkg, oldest = need
        have = t.version(pkg)
        pinned = t.pin_by_name[pkg].text if pkg in t.pin_by_name else pkg
        if have is None:
            reported.add(pkg)
            yield Finding(Severity.ERROR, f"--optimizer_type {opt} needs the package {pkg}, which is not installed",
                          fix=f"Install {pkg} into the training venv.", fix_command=t.pip(pinned),
                          cause="versions.optional_optimizer_package_missing")
        elif oldest:
            try:
                old = Version(have) < Version(oldest)
            except InvalidVersion:
                old = False
            if old:
                reported.add(pkg)
                yield Finding(Severity.ERROR, f"--optimizer_type {opt} needs {pkg} >= {oldest}; {have} is installed",
                              fix=f"Upgrade {pkg}.", fix_command=t.pip(f"{pkg}>={oldest}"),
                              cause="versions.optimizer_package_outdated")
    log_with = ctx.option("log_with")
    if isinstance(log_with, str) and log_with:
        table = rules()["log_with"]
        wanted = list(table) if log_with == "all" else [log_with]
        missing = [p for w in wanted for p in table.get(w, []) if t.version(p) is None]
        if missing and (log_with != "all" or len(missing) == len(wanted)):
            yield Finding(Severity.ERROR, f"--log_with {log_with} needs {', '.join(missing)}, which is not installed",
                          fix="Install it, or drop --log_with.", fix_command=t.pip(*missing),
                          cause="versions.log_backend_missing")
    module = ctx.option("network_module")
    if isinstance(module, str) and module:
        pkg = rules()["modules"].get(module.split(".")[0])
        if pkg and pkg != "transformers" and t.version(pkg) is None:
            reported.add(pkg)
            yield Finding(Severity.ERROR, f"--network_module {module} comes from the package {pkg}, which is not installed",
                          fix=f"Install {pkg} into the training venv.", fix_command=t.pip(pkg),
                          cause="versions.network_module_package_missing")


def pin_findings(t: Target, reported: set):
    """Each requirement of the checkout against what is installed."""
    from lora_doctor.target.requirements import applies, direction, satisfies

    policy = rules()["policy"]
    optional = set(policy.get("optional", []))
    errors, warns, infos, missing_core, missing_optional = [], [], [], [], []
    for pin in t.pins:
        if pin.name in reported or not applies(pin, t.markers):
            continue
        have = t.version(pin.name)
        if have is None:
            (missing_optional if pin.name in optional else missing_core).append(pin)
            continue
        if not pin.requirement.specifier or satisfies(have, pin.requirement.specifier) is not False:
            continue
        rule = policy.get("packages", {}).get(pin.name, {})
        way = direction(have, pin.requirement.specifier)
        level = rule.get(way) or (rule.get("newer") if way == "newer_major" else None) or "warn"
        entry = (pin, have, rule.get("cause") if way in ("older", "newer_major") or level == "error" else None)
        {"error": errors, "warn": warns, "info": infos}[level].append(entry)
    for pin, have, cause in errors:
        reported.add(pin.name)
        yield Finding(Severity.ERROR, f"{pin.name} {have} is installed; this sd-scripts needs {pin.text}",
                      fix=where_pins(t), fix_command=t.reinstall_pins([pin.name]), cause=cause,
                      facts={"compared with": t.source})
    if missing_core:
        names = [p.name for p in missing_core]
        yield Finding(Severity.ERROR, "not installed in the training Python: " + ", ".join(names),
                      fix="Install sd-scripts' requirements into the Python that runs training.",
                      fix_command=t.reinstall_pins(names), cause="install.requirements_missing",
                      facts={"compared with": t.source})
    if warns:
        yield Finding(Severity.WARN, "versions differ from the pins: " + ", ".join(
                      f"{p.name} {have} (wants {p.text})" for p, have, _ in warns),
                      fix="Usually harmless; if training fails, install the pinned versions.",
                      fix_command=t.reinstall_pins([p.name for p, _, _ in warns]), facts={"compared with": t.source})
    if infos:
        yield Finding(Severity.INFO, "minor differences from the pins: " + ", ".join(
                      f"{p.name} {have} (pin {p.text})" for p, have, _ in infos))
    if missing_optional:
        yield Finding(Severity.INFO, "not installed, needed only by some options (checked above when used): "
                      + ", ".join(p.name for p in missing_optional))


def declared(t: Target, reported: set):
    """What the installed key packages themselves declare (pip check, for the packages that matter)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import SpecifierSet

    from lora_doctor.target.requirements import applies, canonical, satisfies

    causes = {("torchvision", "torch"): "versions.torch_torchvision_mismatch",
              ("xformers", "torch"): "versions.xformers_missing",
              ("transformers", "tokenizers"): "versions.transformers_incompatible",
              ("transformers", "huggingface-hub"): "versions.huggingface_hub_incompatible",
              ("diffusers", "huggingface-hub"): "versions.huggingface_hub_incompatible",
              ("accelerate", "huggingface-hub"): "versions.huggingface_hub_incompatible"}
    for dist, lines in sorted(t.requires.items()):
        if dist in reported or t.version(dist) is None:
            continue
        for line in lines:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            dep = canonical(req.name)
            if dep in reported or not applies(req, t.markers) or not req.specifier:
                continue
            have = t.version(dep)
            if have is None or satisfies(have, req.specifier) is not False:
                continue
            cause = causes.get((dist, dep))
            reported.add(dep)
            yield Finding(Severity.ERROR if cause else Severity.WARN,
                          f"{dist} {t.version(dist)} requires {req.name}{SpecifierSet(str(req.specifier))}, "
                          f"but {have} is installed", detail="pip reports this as a broken requirement (pip check).",
                          fix="Install versions that fit together: " + where_pins(t)[0].lower() + where_pins(t)[1:],
                          fix_command=t.reinstall_pins([dist, dep]), cause=cause)


@hookimpl
def lora_doctor_register_checks(register):
    """Package versions of the training Python against sd-scripts' pins (versions.packages)."""
    register(Check(id="versions.packages", title="Package versions", run=check_versions, timeout=30.0))
