"""Rebuild lora_doctor/data/sdscripts_messages.json: every user-facing abort of kohya-ss sd-scripts.

Run it on a bare (or normal) git clone of https://github.com/kohya-ss/sd-scripts:

    .venv/bin/python tools/sdscripts_catalogue.py /path/to/sd-scripts.git [--out FILE] [--since v0.6.0]

For every release tag from v0.6.0 (`--since`) to the newest, and for the default branch head
(`main`), it reads with `ast` (from git objects, no checkout) the LoRA/DreamBooth/fine-tune
trainers — train_network.py, sdxl_train_network.py, train_db.py, fine_tune.py — plus the network
modules they load by name (networks/lora.py, …), and every module of the repository they import,
transitively. Each `raise X(msg)`, `assert cond, msg` and error log/print followed by an abort
becomes one entry (see `lora_doctor.diagnose.sdscripts_source.extract_messages`): the message as a template
and a regex (plus each half of an "English / 日本語" message), the exception, where it is at the
newest version that has it, the condition in generated words, the options it reads, and the first
and last version it is seen in. Entries are deduplicated across versions by pattern.

The output is deterministic (the same mirror gives the same file byte for byte): one entry per
line, sorted by id. Only message texts come from sd-scripts; conditions are generated words.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lora_doctor.diagnose.sdscripts_source import extract_messages  # noqa: E402

TRAINERS = ("train_network.py", "sdxl_train_network.py", "train_db.py", "fine_tune.py")
# loaded by name through --network_module (importlib), so no import statement leads to them
NETWORK_MODULES = ("networks/lora.py", "networks/dylora.py", "networks/lora_fa.py", "networks/oft.py")
OUT = ROOT / "lora_doctor" / "data" / "sdscripts_messages.json"
HEAD = "main"
ALSO_KEYS = ("file", "line", "function", "condition", "options")  # of the other places printing a message


class Repo:
    def __init__(self, git_dir: str):
        self.git_dir = git_dir
        self._cat = None
        self._blobs: dict[str, str] = {}

    def git(self, *args: str) -> str:
        return subprocess.run(["git", f"--git-dir={self.git_dir}", *args], check=True, capture_output=True,
                              text=True, timeout=120).stdout

    def tree(self, rev: str) -> dict[str, str]:
        """path -> blob id of every .py file at rev."""
        out = {}
        for line in self.git("ls-tree", "-r", rev).splitlines():
            meta, path = line.split("\t", 1)
            mode, kind, sha = meta.split()
            if kind == "blob" and path.endswith(".py"):
                out[path] = sha
        return out

    def blob(self, sha: str) -> str:
        if sha not in self._blobs:
            if self._cat is None:
                self._cat = subprocess.Popen(["git", f"--git-dir={self.git_dir}", "cat-file", "--batch"],
                                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            self._cat.stdin.write(sha.encode() + b"\n")
            self._cat.stdin.flush()
            header = self._cat.stdout.readline().split()
            size = int(header[2])
            data = self._cat.stdout.read(size + 1)[:-1]
            self._blobs[sha] = data.decode("utf-8", errors="replace")
        return self._blobs[sha]

    def close(self) -> None:
        if self._cat is not None:
            self._cat.stdin.close()
            self._cat.wait(timeout=30)


def version_key(tag: str) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", tag))


def release_tags(repo: Repo, since: str) -> list[str]:
    tags = [t for t in repo.git("tag").split() if re.fullmatch(r"v\d+(\.\d+)+", t)]
    return sorted((t for t in tags if version_key(t) >= version_key(since)), key=version_key)


def head_name(repo: Repo) -> str:
    for name in (HEAD, "master"):
        try:
            repo.git("rev-parse", "--verify", "--quiet", name)
            return name
        except subprocess.CalledProcessError:
            continue
    return "HEAD"


def imported_files(source: str, path: str, tree: dict[str, str]) -> set[str]:
    """The repository's own files a module imports (anywhere in it, lazy imports too)."""
    try:
        module = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    package = path.rsplit("/", 1)[0] if "/" in path else ""
    found = set()

    def add(dotted: str) -> bool:
        base = dotted.replace(".", "/")
        for candidate in (base + ".py", base + "/__init__.py"):
            if candidate in tree:
                found.add(candidate)
                return True
        return False

    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                for n in range(len(parts), 0, -1):  # import library.train_util: the module and its package
                    add(".".join(parts[:n]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split("/") if package else []
                base_parts = base_parts[:len(base_parts) - (node.level - 1)] if node.level > 1 else base_parts
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if base:
                add(base)
            for alias in node.names:  # from library import train_util
                add(f"{base}.{alias.name}" if base else alias.name)
    return found


def files_of(repo: Repo, tree: dict[str, str]) -> list[str]:
    todo = [p for p in TRAINERS + NETWORK_MODULES if p in tree]
    seen: set[str] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += sorted(imported_files(repo.blob(tree[path]), path, tree) - seen)
    return sorted(seen)


_parsed: dict[tuple[str, str], list[dict]] = {}


def sites_at(repo: Repo, rev: str) -> list[dict]:
    tree = repo.tree(rev)
    out = []
    for path in files_of(repo, tree):
        key = (tree[path], path)
        if key not in _parsed:
            _parsed[key] = extract_messages(repo.blob(tree[path]), path)
        out += _parsed[key]
    return out


def site_order(s: dict) -> tuple:
    """The trainers first (train_network.py before the others), then the modules by path."""
    rank = TRAINERS.index(s["file"]) if s["file"] in TRAINERS else len(TRAINERS)
    return (rank, s["file"], s["line"])


def build(git_dir: str, since: str) -> dict:
    repo = Repo(git_dir)
    try:
        head = head_name(repo)
        versions = release_tags(repo, since) + [head]
        head_commit = repo.git("rev-parse", "--short=12", head).strip()
        entries: dict[str, dict] = {}
        seen_in: dict[str, list[str]] = {}
        for version in versions:
            per_id: dict[str, list[dict]] = {}
            for s in sites_at(repo, version):
                per_id.setdefault(s["id"], []).append(s)
            for eid, sites in per_id.items():
                sites.sort(key=site_order)
                primary = dict(sites[0])
                also = [{k: s[k] for k in ALSO_KEYS} for s in sites[1:]]
                if also:
                    primary["also"] = also
                entries[eid] = primary  # the newest version wins: its file, line, condition
                seen_in.setdefault(eid, []).append(version)
        messages = []
        for eid, entry in entries.items():
            seen = seen_in[eid]
            entry["first"], entry["last"] = seen[0], seen[-1]
            if not entry.get("halves"):
                entry.pop("halves", None)
            messages.append(entry)
        messages.sort(key=lambda e: e["id"])
        return {"source": "https://github.com/kohya-ss/sd-scripts", "generator": "tools/sdscripts_catalogue.py",
                "head": f"{head}@{head_commit}", "versions": versions, "files": list(TRAINERS + NETWORK_MODULES),
                "messages": messages}
    finally:
        repo.close()


def dump(catalogue: dict) -> str:
    """Compact but diffable: the header keys, then one message per line."""
    head = {k: v for k, v in catalogue.items() if k != "messages"}
    lines = ["{"]
    for k in sorted(head):
        lines.append(f"{json.dumps(k)}: {json.dumps(head[k], ensure_ascii=False)},")
    lines.append('"messages": [')
    body = [json.dumps(m, ensure_ascii=False, sort_keys=True, separators=(",", ":")) for m in catalogue["messages"]]
    lines.append(",\n".join(body))
    lines.append("]}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("git_dir", help="the sd-scripts git directory (a bare mirror or a clone's .git)")
    ap.add_argument("--out", default=str(OUT), help=f"output file (default {OUT.relative_to(ROOT)})")
    ap.add_argument("--since", default="v0.6.0", help="the oldest release tag to read (default v0.6.0)")
    args = ap.parse_args(argv)
    git_dir = args.git_dir
    if (Path(git_dir) / ".git").is_dir():
        git_dir = str(Path(git_dir) / ".git")
    catalogue = build(git_dir, args.since)
    text = dump(catalogue)
    Path(args.out).write_text(text, encoding="utf-8")
    kinds: dict[str, int] = {}
    for m in catalogue["messages"]:
        kinds[m["kind"]] = kinds.get(m["kind"], 0) + 1
    print(f"{len(catalogue['messages'])} messages from {len(catalogue['versions'])} versions "
          f"({catalogue['versions'][0]} … {catalogue['versions'][-1]}): "
          + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
          + f"; {len(text.encode()) // 1024} KiB -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
