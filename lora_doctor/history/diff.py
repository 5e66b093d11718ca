"""What changed between two recorded runs, most suspicious first.

Order (tier): a package known to matter (and torch's CUDA build), the dataset and its config file,
new options, changed options, removed options and the launcher, the model, GPU/driver, Python and
other packages, the working directory.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

IMPORTANT_PACKAGES = ("torch", "transformers", "diffusers", "accelerate", "huggingface_hub", "xformers",
                      "bitsandbytes", "safetensors", "numpy")
MODEL_OPTIONS = ("pretrained_model_name_or_path",)
T_PACKAGE, T_DATASET, T_NEW_OPTION, T_OPTION, T_REMOVED, T_MODEL, T_GPU, T_OTHER, T_PLACE = range(9)
MARK = {T_PACKAGE: "!", T_DATASET: "!", T_NEW_OPTION: "+", T_OPTION: "~", T_REMOVED: "-"}
SHOW_NAMES = 3


@dataclass
class Change:
    """One difference between run A (before) and run B (after)."""

    tier: int
    kind: str  # package · torch · dataset · config · option · launcher · model · gpu · python · cwd
    name: str
    old: object
    new: object
    text: str

    @property
    def mark(self) -> str:
        return MARK.get(self.tier, "·")

    def to_json(self) -> dict:
        return {"kind": self.kind, "name": self.name, "old": self.old, "new": self.new, "text": self.text,
                "rank": self.tier}


def _version_word(old: str | None, new: str | None) -> str:
    if old is None:
        return "installed"
    if new is None:
        return "uninstalled"
    try:
        from packaging.version import Version

        vo, vn = Version(old), Version(new)
        if vo.public == vn.public:
            return "another build"
        return "upgraded" if vn > vo else "downgraded"
    except Exception:  # not PEP 440, or packaging missing: compare the numbers in it
        no, nn = _numbers(old), _numbers(new)
        return "changed" if no == nn or not (no and nn) else "upgraded" if nn > no else "downgraded"


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", version.split("+")[0]))


def _packages(a: dict, b: dict) -> list[Change]:
    pa, pb = a.get("packages") or {}, b.get("packages") or {}
    out = []
    for name in sorted(set(pa) | set(pb), key=lambda n: (n not in IMPORTANT_PACKAGES, n)):
        old, new = pa.get(name), pb.get(name)
        if old == new:
            continue
        tier = T_PACKAGE if name in IMPORTANT_PACKAGES else T_OTHER
        text = f"{name} {old or 'not installed'} → {new or 'not installed'} ({_version_word(old, new)})"
        out.append(Change(tier, "package", name, old, new, text))
    return out


def _driver(facts: dict):
    for holder in (facts.get("gpu") or {}, facts.get("torch") or {}, facts):
        if isinstance(holder, dict) and holder.get("driver"):
            return holder.get("driver")
    return None


def _gpus(torch: dict) -> str | None:
    names = [d.get("name") or "?" for d in torch.get("devices") or []]
    return ", ".join(names) if names else None


def _environment(a: dict, b: dict) -> list[Change]:
    out = []
    ta, tb = a.get("torch") or {}, b.get("torch") or {}
    if ta and tb:
        if ta.get("imported") != tb.get("imported"):
            out.append(Change(T_PACKAGE, "torch", "torch import", ta.get("error"), tb.get("error"),
                              "torch imports again" if tb.get("imported")
                              else f"torch no longer imports: {tb.get('error') or 'unknown error'}"))
        for key, label in (("cuda_build", "torch CUDA build"), ("hip_build", "torch ROCm build")):
            if ta.get(key) != tb.get(key) and (ta.get(key) or tb.get(key)):
                word = _version_word(ta.get(key), tb.get(key)) if ta.get(key) and tb.get(key) else ""
                out.append(Change(T_PACKAGE, "torch", key, ta.get(key), tb.get(key),
                                  f"{label} {ta.get(key) or 'none (CPU)'} → {tb.get(key) or 'none (CPU)'}"
                                  + (f" ({word})" if word in ("upgraded", "downgraded") else "")))
        if bool(ta.get("cuda_available")) != bool(tb.get("cuda_available")) and ta.get("imported") and tb.get("imported"):
            out.append(Change(T_PACKAGE, "torch", "cuda_available", ta.get("cuda_available"), tb.get("cuda_available"),
                              "CUDA is available again" if tb.get("cuda_available") else "CUDA is no longer available to torch"))
        if _gpus(ta) != _gpus(tb):
            out.append(Change(T_GPU, "gpu", "devices", _gpus(ta), _gpus(tb),
                              f"GPU {_gpus(ta) or 'none'} → {_gpus(tb) or 'none'}"))
        if ta.get("cudnn") != tb.get("cudnn") and ta.get("cudnn") and tb.get("cudnn"):
            out.append(Change(T_GPU, "gpu", "cudnn", ta.get("cudnn"), tb.get("cudnn"),
                              f"cuDNN {ta.get('cudnn')} → {tb.get('cudnn')}"))
    da, db = _driver(a), _driver(b)
    if da != db and (da or db):
        out.append(Change(T_GPU, "gpu", "driver", da, db, f"GPU driver {da or 'unknown'} → {db or 'unknown'}"))
    pya, pyb = a.get("python") or {}, b.get("python") or {}
    if pya and pyb:
        if pya.get("version") != pyb.get("version"):
            word = _version_word(str(pya.get("version")), str(pyb.get("version")))
            out.append(Change(T_OTHER, "python", "version", pya.get("version"), pyb.get("version"),
                              f"Python {pya.get('version')} → {pyb.get('version')}"
                              + (f" ({word})" if word in ("upgraded", "downgraded") else "")))
        if pya.get("executable") != pyb.get("executable"):
            out.append(Change(T_OTHER, "python", "executable", pya.get("executable"), pyb.get("executable"),
                              f"Python interpreter {pya.get('executable')} → {pyb.get('executable')}"))
    return out


def _fmt_option(name: str, value) -> str:
    if value is True:
        return f"--{name}"
    if isinstance(value, list):
        return f"--{name} " + " ".join(str(v) for v in value)
    return f"--{name}={value}"


def _short(value) -> str:
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def _options(a: dict, b: dict) -> list[Change]:
    oa, ob = a.get("options") or {}, b.get("options") or {}
    out = []
    for name in ob:
        if name not in oa:
            out.append(Change(T_NEW_OPTION, "option", name, None, ob[name], f"new option {_fmt_option(name, ob[name])}"))
    for name in oa:
        if name in ob and oa[name] != ob[name]:
            out.append(Change(T_OPTION, "option", name, oa[name], ob[name],
                              f"--{name} {_short(oa[name])} → {_short(ob[name])}"))
    for name in oa:
        if name not in ob:
            out.append(Change(T_REMOVED, "option", name, oa[name], None, f"option {_fmt_option(name, oa[name])} removed"))
    la, lb = _launcher(a), _launcher(b)
    if la != lb:
        out.append(Change(T_REMOVED, "launcher", "launcher", la, lb,
                          f"launcher {' '.join(la) or '(none)'} → {' '.join(lb) or '(none)'}"))
    sa, sb = a.get("script"), b.get("script")
    if sa != sb and (sa or sb):
        out.insert(0, Change(T_NEW_OPTION, "script", "script", sa, sb, f"script {sa or '(none)'} → {sb or '(none)'}"))
    if not out and (a.get("argv") or []) != (b.get("argv") or []):
        out.append(_command_change(a.get("argv") or [], b.get("argv") or []))
    return out


def _command_change(argv_a: list[str], argv_b: list[str]) -> Change:
    """The command differs in what the parsed options do not show (positional words, order, a
    repeated option): say which words came and went."""
    import difflib

    parts = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=argv_a, b=argv_b, autojunk=False).get_opcodes():
        if op in ("delete", "replace") and i2 > i1:
            parts.append("removed " + " ".join(argv_a[i1:i2]))
        if op in ("insert", "replace") and j2 > j1:
            parts.append("added " + " ".join(argv_b[j1:j2]))
    text = "; ".join(parts) or "the same words in another order"
    return Change(T_OPTION, "command", "argv", argv_a, argv_b, f"command changed: {text}")


def _launcher(run: dict) -> list[str]:
    """The command up to the script (`accelerate launch --num_processes 1`), for comparison."""
    argv, script = run.get("argv") or [], run.get("script")
    if script in argv:
        return argv[:argv.index(script)]
    return []


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:SHOW_NAMES])
    return shown + (f" and {len(items) - SHOW_NAMES} more" if len(items) > SHOW_NAMES else "")


def _dataset(a: dict, b: dict, manifest_a: dict, manifest_b: dict) -> list[Change]:
    da = {d["path"]: d for d in a.get("dataset") or []}
    db = {d["path"]: d for d in b.get("dataset") or []}
    out = []
    for path in da.keys() - db.keys():
        out.append(Change(T_DATASET, "dataset", path, da[path]["images"], None, f"dataset folder {path} no longer used"))
    for path in db.keys() - da.keys():
        out.append(Change(T_DATASET, "dataset", path, None, db[path]["images"],
                          f"new dataset folder {path} ({db[path]['images']} images)"))
    for path in sorted(da.keys() & db.keys()):
        old, new = da[path], db[path]
        if old.get("exists") and not new.get("exists"):
            out.append(Change(T_DATASET, "dataset", path, old["images"], None, f"dataset folder {path} is gone"))
            continue
        if old.get("hash") == new.get("hash") and old.get("exists") == new.get("exists"):
            continue
        parts = []
        if old["images"] != new["images"]:
            parts.append(f"{old['images']} → {new['images']} images")
        if old["captions"] != new["captions"]:
            parts.append(f"{old['captions']} → {new['captions']} captions")
        files_a = {f[0]: f[1:] for f in manifest_a.get(path) or []}
        files_b = {f[0]: f[1:] for f in manifest_b.get(path) or []}
        if files_a and files_b:
            added = sorted(files_b.keys() - files_a.keys())
            removed = sorted(files_a.keys() - files_b.keys())
            changed = sorted(n for n in files_a.keys() & files_b.keys() if files_a[n] != files_b[n])
            for label, names in (("added", added), ("removed", removed), ("modified", changed)):
                if names:
                    parts.append(f"{label}: {_names(names)}")
        elif not parts:
            parts.append("files modified (same counts)")
        if old["bytes"] != new["bytes"]:
            parts.append(f"{_size(old['bytes'])} → {_size(new['bytes'])}")
        out.append(Change(T_DATASET, "dataset", path,
                          {k: old.get(k) for k in ("images", "captions", "bytes", "hash")},
                          {k: new.get(k) for k in ("images", "captions", "bytes", "hash")},
                          f"dataset {path}: " + "; ".join(parts)))
    ca, cb = a.get("configs") or {}, b.get("configs") or {}
    for name in sorted(ca.keys() & cb.keys()):
        if ca[name].get("path") == cb[name].get("path") and ca[name].get("sha256") != cb[name].get("sha256"):
            out.append(Change(T_DATASET, "config", name, ca[name].get("sha256"), cb[name].get("sha256"),
                              f"contents of --{name} {cb[name]['path']} changed"))
    return out


def _model(a: dict, b: dict) -> list[Change]:
    ma, mb = a.get("model_identity"), b.get("model_identity")
    if ma == mb or not (ma or mb):
        return []
    oa, ob = a.get("options") or {}, b.get("options") or {}
    if a.get("model") != b.get("model") and any(oa.get(o) != ob.get(o) for o in MODEL_OPTIONS):
        return []  # the changed option already says it
    ma, mb = ma or {}, mb or {}
    where = b.get("model") or a.get("model")
    if ma.get("kind") == mb.get("kind") == "repo":
        text = f"model {where}: cached revision {ma.get('revision') or 'none'} → {mb.get('revision') or 'none'}"
    elif ma.get("kind") == mb.get("kind") and ma.get("kind") in ("file", "folder"):
        text = f"model {where} changed on disk ({_size(ma.get('size'))} → {_size(mb.get('size'))})"
    elif mb.get("kind") == "missing":
        text = f"model {where} no longer exists"
    else:
        text = f"model {a.get('model')} → {b.get('model')}"
    return [Change(T_MODEL, "model", "model", ma, mb, text)]


def _size(n) -> str:
    if not isinstance(n, (int, float)):
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def diff_runs(a: dict, b: dict) -> list[Change]:
    """Every recorded difference from run A to run B, most suspicious first."""
    from lora_doctor.history.fingerprint import unpack_manifest

    fa, fb = a.get("facts") or {}, b.get("facts") or {}
    changes = _options(a, b) + _dataset(a, b, unpack_manifest(a.get("dataset_manifest")),
                                        unpack_manifest(b.get("dataset_manifest"))) + _model(a, b)
    if fa and fb:
        changes += _packages(fa, fb) + _environment(fa, fb)
    if a.get("cwd") != b.get("cwd"):
        changes.append(Change(T_PLACE, "cwd", "cwd", a.get("cwd"), b.get("cwd"),
                              f"working directory {a.get('cwd')} → {b.get('cwd')}"))
    return sorted(changes, key=lambda c: c.tier)  # stable: keeps the order within a tier


def notes(a: dict, b: dict) -> list[str]:
    """What could not be compared."""
    out = []
    for run in (a, b):
        if not run.get("facts"):
            out.append(f"run #{run['id']} has no environment facts (the probe failed): packages not compared")
    return out


def when(ts) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts)) if ts else "?"


def ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if unit == 'day' and n != 1 else ''}"
    return f"{int(seconds)} s"


def describe(run: dict) -> str:
    """`run #12 (failed, 2026-11-25 09:10)`."""
    return f"run #{run['id']} ({run['outcome']}, {when(run.get('started_at'))})"


def brief(ok: dict, failed: dict, changes: list[Change], limit: int = 6) -> str:
    """The short block the post-mortem prints after a failed run."""
    since = ago((failed.get("started_at") or 0) - (ok.get("ended_at") or 0))
    head = f"What changed since the last success (run #{ok['id']}, {when(ok.get('started_at'))}, {since} earlier):"
    if not changes:
        return (f"Nothing recorded changed since the last success (run #{ok['id']}, {when(ok.get('started_at'))}): "
                "same options, packages, dataset and model. Suspect what is not recorded: disk space, "
                "other processes on the GPU, files the run reads that are not the dataset or the model.")
    lines = [head] + [f"  {c.mark} {c.text}" for c in changes[:limit]]
    if len(changes) > limit:
        lines.append(f"  … and {len(changes) - limit} more: lora-doctor diff {ok['id']} {failed['id']}")
    return "\n".join(lines)

