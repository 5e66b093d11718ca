"""How much of sd-scripts' own error vocabulary does `lora-doctor diagnose` cover?

For every message of the catalogue (lora_doctor/data/sdscripts_messages.json, built by
tools/sdscripts_catalogue.py) it writes the one line a user would see — `ValueError: <message>` for
a raise or an assert, a rich log record for an error logged before an abort — with plausible values
in the message's placeholders, diagnoses it in-process (the API `lora-doctor diagnose` uses) and
counts: a diagnosis (a cause id), an explanation of that very message, neither. Messages without a
cause id are listed (id, message) for whoever writes signatures in known_errors/.

Run: .venv/bin/python benchmarks/sdscripts_vocabulary.py [--misses FILE] [--halves]
(prints numbers; no assertions). Goal set by issue 11: ≥95 % explained, ≥60 % with a cause id.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# placeholder name (a regex on it) -> a value sd-scripts would print there
VALUES = [
    (r"cap_path|caption", "/data/train/10_sks dog/img_0001.txt"),
    (r"npz", "/data/train/10_sks dog/img_0001_0512x0512_sdxl.npz"),
    (r"image_dir|dir$|folder|data_dir", "/data/train/10_sks dog"),
    (r"config_path|config|toml", "/data/config/dataset.toml"),
    (r"path|file|image_key|img|abs", "/data/train/10_sks dog/img_0001.png"),
    (r"prompt", "/data/prompts.txt"),
    (r"reso|resolution", "(512, 512)"),
    (r"shape", "torch.Size([4, 77, 768])"),
    (r"dtype|type", "torch.float16"),
    (r"optimizer", "AdamW8bit"),
    (r"loss", "huber"),
    (r"schedule|scheduler", "cosine_with_restarts"),
    (r"^len$|num|count|steps|step|size|dim|idx|index|blocks|value|scale|width|height|start|area|alphas", "4"),
    (r"name|key", "lora_unet_down_blocks_0_attentions_0_proj_in"),
    (r"device", "cuda:0"),
    (r"version", "2.0.1"),
]


def fill(template: str) -> str:
    """The message with every {placeholder} replaced by a plausible value."""

    def value(m: re.Match) -> str:
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        name = m.group(1).lower()
        for rx, v in VALUES:
            if re.search(rx, name):
                return v
        return "foo"

    return re.sub(r"\{\{|\}\}|\{([^{}]*)\}", value, template)


def log_line(entry: dict, message: str) -> str:
    """The line sd-scripts prints for this message."""
    if entry["kind"] == "log":
        src = entry["file"].rsplit("/", 1)[-1]
        return f"2025-03-01 12:00:00 ERROR    {message}    {src}:{entry['line']}"
    return f"{entry.get('exception') or 'Exception'}: {message}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--misses", metavar="FILE", help="also write the messages without a cause id to FILE")
    ap.add_argument("--halves", action="store_true", help="also try each half of English / 日本語 messages alone")
    args = ap.parse_args(argv)

    from lora_doctor.diagnose.explain import catalogue, user_facing
    from lora_doctor.diagnose.sdscripts_source import halves, parse_template, template_text
    from lora_doctor.diagnose.match import diagnose_text, load_signatures

    entries = [e for e in catalogue()["messages"] if e.get("message")]
    _db, host = load_signatures()
    t0 = time.perf_counter()
    cause, explained, wrong, neither = [], [], [], []
    misses: list[tuple[str, str, str]] = []
    half_hits = {"english": [0, 0], "japanese": [0, 0]}
    for e in entries:
        line = log_line(e, fill(e["message"]))
        report = diagnose_text(line, host=host)
        ids = [x["id"] for x in report.explanations]
        has_cause = bool(report.diagnoses)
        (cause if has_cause else misses).append((e["id"], e["message"], line) if not has_cause else e["id"])
        if e["id"] in ids:
            explained.append(e["id"])
        elif ids:
            wrong.append((e["id"], ids))
        if not has_cause and e["id"] not in ids:
            neither.append(e["id"])
        if args.halves:
            split = halves(parse_template(e["message"]))
            for which, parts in zip(("english", "japanese"), split or ()):
                half_hits[which][1] += 1
                r = diagnose_text(log_line(e, fill(template_text(parts))), host=host)
                half_hits[which][0] += e["id"] in [x["id"] for x in r.explanations]
    took = time.perf_counter() - t0
    n = len(entries)

    def pct(k: int) -> str:
        return f"{k}/{n} ({100.0 * k / n:.1f} %)" if n else "0/0"

    versions = catalogue().get("versions", [])
    print(f"catalogue: {n} messages, sd-scripts {versions[0] if versions else '?'} … "
          f"{versions[-1] if versions else '?'} ({len(versions)} versions)")
    print(f"with a cause id (diagnosis): {pct(len(cause))}   goal ≥ 60 %")
    facing = [e for e in entries if user_facing(e)]
    facing_cause = sum(e["id"] in set(cause) for e in facing)
    print(f"  of the {len(facing)} a user can cause: {facing_cause}/{len(facing)} "
          f"({100.0 * facing_cause / max(len(facing), 1):.1f} %)")
    print(f"explained (that message):    {pct(len(explained))}   goal ≥ 95 %")
    print(f"neither:                     {pct(len(neither))}")
    if wrong:
        print(f"explained as another message: {len(wrong)}")
        for eid, ids in wrong[:20]:
            print(f"  {eid} -> {', '.join(ids)}")
    if args.halves:
        for which, (hit, total) in half_hits.items():
            print(f"{which} half alone explained: {hit}/{total}")
    print(f"({took:.1f} s, {1000 * took / max(n, 1):.1f} ms per log)")
    print()
    print(f"messages without a cause id ({len(misses)}):")
    lines = [f"{eid}\t{message}" for eid, message, _line in sorted(misses, key=lambda m: m[1].lower())]
    for text in lines:
        print("  " + text)
    if args.misses:
        Path(args.misses).write_text("# id\tmessage (sd-scripts messages no signature names a cause for)\n"
                                     + "\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
