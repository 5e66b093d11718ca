"""Cheap identities of a run's inputs for the run history: dataset folders, the base model, config files.

Everything here is bounded: the dataset is only listed and stat()ed (never read), walks stop after
MAX_FILES entries, and config files are hashed only when small.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import zlib

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".avif", ".jxl"}
CAPTION_EXTS = {".txt", ".caption"}
MAX_FILES = 100_000  # per dataset folder; beyond it the fingerprint is marked truncated
MAX_DEPTH = 4  # train_data_dir/10_name/sub/…
MANIFEST_MAX = 5_000  # per-file listing kept (compressed) so a diff can name added/removed files
CONFIG_OPTIONS = ("dataset_config", "config_file")
CONFIG_MAX_BYTES = 2 * 1024 * 1024
REPO_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve(path: str, cwd: str | None) -> str:
    """`path` made absolute against the run's working directory, normalised."""
    path = os.path.expanduser(str(path))
    if cwd and not os.path.isabs(path):
        path = os.path.join(cwd, path)
    return os.path.normpath(path)


def _walk(root: str, caption_exts: set[str]):
    """Yield (relative path, size, mtime_ns, kind) for images and captions under root, bounded."""
    stack = [(root, "", 0)]
    seen = 0
    while stack:
        folder, rel, depth = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            seen += 1
            if seen > MAX_FILES:
                yield None
                return
            name = f"{rel}/{entry.name}" if rel else entry.name
            try:
                if entry.is_dir():
                    if depth < MAX_DEPTH:
                        stack.append((entry.path, name, depth + 1))
                    continue
                ext = os.path.splitext(entry.name)[1].lower()
                kind = "image" if ext in IMAGE_EXTS else "caption" if ext in caption_exts else None
                if kind is None:
                    continue
                st = entry.stat()
            except OSError:
                continue
            yield name, st.st_size, st.st_mtime_ns, kind


def dataset_fingerprint(folder: str, caption_extension: str | None = None) -> tuple[dict, list]:
    """({path, exists, images, captions, bytes, hash, truncated}, manifest) for one dataset folder.

    `bytes` is the images' total size; `hash` covers names, sizes and mtimes of images and captions;
    the manifest lists [name, size, mtime_ns] (empty when the folder holds more than MANIFEST_MAX files).
    """
    caption_exts = set(CAPTION_EXTS)
    if caption_extension:
        ext = caption_extension if caption_extension.startswith(".") else "." + caption_extension
        caption_exts.add(ext.lower())
    info = {"path": folder, "exists": os.path.isdir(folder), "images": 0, "captions": 0, "bytes": 0,
            "hash": None, "truncated": False}
    if not info["exists"]:
        return info, []
    files = []
    for item in _walk(folder, caption_exts):
        if item is None:
            info["truncated"] = True
            break
        name, size, mtime, kind = item
        files.append([name, size, mtime])
        if kind == "image":
            info["images"] += 1
            info["bytes"] += size
        else:
            info["captions"] += 1
    files.sort()
    digest = hashlib.sha1()
    for name, size, mtime in files:
        digest.update(f"{name}\0{size}\0{mtime}\n".encode("utf-8", "surrogateescape"))
    info["hash"] = digest.hexdigest()[:16]
    return info, files if len(files) <= MANIFEST_MAX else []


def dataset_folders(entries: list[str], cwd: str | None) -> list[str]:
    """The folders to fingerprint: folders as given; a dataset TOML (--dataset_config) stands for the
    image_dir of each of its subsets (relative ones resolved against the run's directory)."""
    out: list[str] = []
    for entry in entries:
        path = resolve(entry, cwd)
        if path.lower().endswith(".toml") and os.path.isfile(path):
            out.extend(resolve(d, cwd) for d in _toml_image_dirs(path))
        else:
            out.append(path)
    return list(dict.fromkeys(out))


def _toml_image_dirs(path: str) -> list[str]:
    from lora_doctor.tomlcompat import load

    try:
        with open(path, "rb") as fh:
            data = load(fh)
    except Exception:  # unreadable or invalid TOML: the config checks say so; here it has no folders
        return []
    dirs = []
    for dataset in data.get("datasets") or []:
        for subset in (dataset.get("subsets") or []) if isinstance(dataset, dict) else []:
            if isinstance(subset, dict) and isinstance(subset.get("image_dir"), str):
                dirs.append(subset["image_dir"])
    return dirs


def pack_manifest(manifests: dict[str, list]) -> bytes | None:
    """Compressed {folder: [[name, size, mtime_ns], …]} for storage, or None when empty."""
    if not any(manifests.values()):
        return None
    return zlib.compress(json.dumps(manifests, separators=(",", ":")).encode("utf-8", "surrogateescape"), 6)


def unpack_manifest(blob: bytes | None) -> dict[str, list]:
    """The inverse of pack_manifest; {} for None or an unreadable blob."""
    if not blob:
        return {}
    try:
        return json.loads(zlib.decompress(blob).decode("utf-8", "surrogateescape"))
    except (zlib.error, ValueError):
        return {}


def model_identity(model: str | None, cwd: str | None = None) -> dict | None:
    """What the base model is, cheaply: a file's size+mtime, a folder's model_index.json mtime and
    size sum, or a repo id with the cached revision of `main` when the hub cache holds it."""
    if not model:
        return None
    path = resolve(model, cwd)
    try:
        if os.path.isfile(path):
            st = os.stat(path)
            return {"kind": "file", "path": path, "size": st.st_size, "mtime": int(st.st_mtime)}
        if os.path.isdir(path):
            index = os.path.join(path, "model_index.json")
            total = count = 0
            for item in _walk(path, {".json", ".safetensors", ".bin", ".ckpt", ".txt", ".model"}):
                if item is None:
                    break
                total += item[1]
                count += 1
            index_mtime = int(os.stat(index).st_mtime) if os.path.isfile(index) else None
            return {"kind": "folder", "path": path, "size": total, "files": count,
                    "model_index_mtime": index_mtime}
    except OSError:
        pass
    if REPO_ID_RE.match(model) and not os.path.exists(path):
        revision = None
        from lora_doctor.hub.repo import hub_cache

        ref = hub_cache(os.environ) / ("models--" + model.replace("/", "--")) / "refs" / "main"
        try:
            revision = ref.read_text(encoding="utf-8").strip()[:40] or None
        except OSError:
            pass
        return {"kind": "repo", "id": model, "revision": revision}
    return {"kind": "missing", "path": path}


def config_identities(options: dict, cwd: str | None) -> dict[str, dict]:
    """{option: {path, size, sha256}} for the config files a run names (dataset TOML, config file)."""
    out = {}
    for name in CONFIG_OPTIONS:
        value = options.get(name)
        if not isinstance(value, str) or not value:
            continue
        path = resolve(value, cwd)
        entry = {"path": path, "size": None, "sha256": None}
        try:
            size = os.path.getsize(path)
            entry["size"] = size
            if size <= CONFIG_MAX_BYTES:
                with open(path, "rb") as fh:
                    entry["sha256"] = hashlib.sha256(fh.read()).hexdigest()[:16]
        except OSError:
            pass
        out[name] = entry
    return out
