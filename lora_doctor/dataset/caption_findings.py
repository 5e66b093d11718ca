"""Findings about caption files: missing, wrong extension, empty, not UTF-8, BOM, too long, tags."""

from __future__ import annotations

import os

from lora_doctor.dataset.captions import CLIP_WINDOW, tag_table
from lora_doctor.dataset.scan import Scan, corrected_command, listing, names, plural, require
from lora_doctor.dataset.layout import opt_int
from lora_doctor.launch.script_options import CAPTION_DOT_SINCE
from lora_doctor.model import Finding, Severity


# .NET code pages of the encodings guess_encoding names (PowerShell reads the file with these)
CODE_PAGES = {"cp932": 932, "gbk": 936, "big5": 950, "cp949": 949, "cp1252": 1252, "utf-16": 1200, "utf-8-sig": 65001}
ENCODING_LABELS = {"cp932": "cp932 (Shift-JIS, Japanese Windows)", "gbk": "GBK (Simplified Chinese Windows)",
                   "big5": "Big5 (Traditional Chinese)", "cp949": "cp949 (Korean Windows)",
                   "utf-16": "UTF-16 (Notepad 'Unicode')"}


def _convert_command(python: str, paths: list[str], encoding: str) -> str:
    """Rewrite each file as UTF-8 without BOM, reading it as `encoding` (run with any Python 3)."""
    from lora_doctor.launch.edit import quote as _q

    return (f"{_q(python)} -c \"import sys, pathlib; [pathlib.Path(p).write_text(pathlib.Path(p).read_text("
            f"encoding='{encoding}'), encoding='utf-8') for p in sys.argv[1:]]\" "
            + " ".join(_q(p) for p in paths[:20]))


def powershell_command(paths: list[str], encoding: str) -> str:
    """The same conversion in Windows PowerShell 5.1 and 7, without a BOM and without piping a file
    into itself: .NET reads the whole file with the code page, then writes UTF-8 (no BOM)."""
    files = ",".join("'" + p.replace("'", "''") + "'" for p in paths[:20])
    page = CODE_PAGES.get(encoding, f"'{encoding}'")
    return (f"foreach ($f in {files}) {{ [IO.File]::WriteAllText($f, [IO.File]::ReadAllText($f, "
            f"[Text.Encoding]::GetEncoding({page})), (New-Object Text.UTF8Encoding $false)) }}")


def captions(ctx, scan: Scan) -> list[Finding]:
    require(scan)
    out: list[Finding] = []
    pairs = [(i, c, s) for s in scan.subsets for i, c in zip(s.images, s.captions)]
    _dot_added(scan, out)
    _missing(ctx, scan, pairs, out)
    empty = [c.path for _, c, _ in pairs if c.status == "empty"]
    if empty:
        out.append(Finding(Severity.ERROR, f"{plural(len(empty), 'caption file')} are empty (0 bytes): {names(empty)}",
                           detail="sd-scripts stops with `AssertionError: caption file is empty`.\n" + listing(empty),
                           fix="Write the caption into each file, or delete the empty files (the folder's class "
                               "token is used instead).", cause="dataset.caption_empty", facts={"files": empty[:50]}))
    blank = [c.path for _, c, _ in pairs if c.status == "blank"]
    if blank:
        out.append(Finding(Severity.WARN, f"{plural(len(blank), 'caption file')} have an empty first line: those images "
                                          f"train with an empty caption: {names(blank)}",
                           fix="Put the caption on the first line (sd-scripts reads only the first line).",
                           cause="dataset.caption_empty", facts={"files": blank[:50]}))
    unreadable = [(c.path, c.error) for _, c, _ in pairs if c.status == "unreadable"]
    if unreadable:
        out.append(Finding(Severity.ERROR, f"{plural(len(unreadable), 'caption file')} cannot be read: "
                                           f"{names([p for p, _ in unreadable])} ({unreadable[0][1]})",
                           fix="Fix their permissions, or replace them with plain text files."))
    _not_utf8(ctx, pairs, out)
    bom = [c.path for _, c, _ in pairs if c.status in ("ok", "blank") and c.bom]
    if bom:
        out.append(Finding(Severity.WARN, f"{plural(len(bom), 'caption file')} start with a UTF-8 BOM: sd-scripts keeps it, "
                                          f"so the first tag gets an invisible character: {names(bom)}",
                           fix="Re-save them as UTF-8 without BOM (this rewrites the files listed). In PowerShell: "
                               + powershell_command(bom, "utf-8-sig"),
                           fix_command=_convert_command(ctx.python, bom, "utf-8-sig"), facts={"files": bom[:50]}))
    multi = [c.path for _, c, s in pairs if c.extra_lines and not s.subset.enable_wildcard]
    if multi:
        out.append(Finding(Severity.INFO, f"{plural(len(multi), 'caption file')} have more than one line: sd-scripts uses only "
                                          f"the first: {names(multi)}",
                           fix="Join the lines with commas, or set enable_wildcard = true in a dataset TOML."))
    _length(ctx, pairs, out)
    _tags(pairs, out)
    return out


def _dot_added(scan: Scan, out: list[Finding]) -> None:
    """caption_extension written without its dot: fine since sd-scripts v0.6.5 (a fact, not a problem)."""
    if scan.layout.adds_caption_dot is False:
        return  # an older checkout: the captions are not found, which _missing reports
    written = sorted({s.subset.caption_extension_written for s in scan.subsets if s.subset.caption_extension_written})
    for value in written:
        known = scan.layout.adds_caption_dot is True
        out.append(Finding(
            Severity.INFO, f"caption extension {value!r} has no leading dot: sd-scripts reads .{value} files anyway "
                           f"(it adds the dot since {CAPTION_DOT_SINCE}"
                           + ("" if known else "; this checkout's version could not be read") + ")",
            facts={"caption_extension": value, "read_as": "." + value}))


def _missing(ctx, scan: Scan, pairs, out: list[Finding]) -> None:
    for sub in scan.subsets:
        missing = [i.path for i, c in zip(sub.images, sub.captions) if c.status == "missing"]
        if not missing:
            continue
        ext = sub.subset.caption_extension
        folder = sub.subset.image_dir.name
        if sub.alt_captions:
            other, count = max(sub.alt_captions.items(), key=lambda kv: kv[1])
            source = sub.subset.caption_extension_from
            detail = ("sd-scripts logs `No caption file found for N images` and goes on with the folder's class "
                      "token as every caption.")
            if sub.subset.caption_extension_written and scan.layout.adds_caption_dot is False:
                detail += (f"\nThis sd-scripts checkout is older than {CAPTION_DOT_SINCE}: it does not add the missing "
                           f"dot, so it looks for `<image name>{ext}` files.")
            if source:  # the TOML sets it: the command line would not win
                fix = f"In {source}, write caption_extension = \"{other}\" (the dataset config wins over the command line)."
                command = ""
            else:
                fix = f"Set --caption_extension={other} (with the dot)."
                command = corrected_command(ctx, set_={"caption_extension": other})
            where = f"caption_extension in {source.split(',')[0]}" if source else "--caption_extension"
            out.append(Finding(
                Severity.ERROR, f"{folder}: {count} images have {other} captions but {where} is {ext}: "
                                "sd-scripts finds none of them and trains without captions",
                detail=detail, fix=fix, fix_command=command,
                cause="dataset.caption_extension_mismatch", facts={"folder": str(sub.subset.image_dir)}))
            continue
        tokens = sub.subset.class_tokens
        uses = (f"the folder's class token {tokens!r}" if tokens else
                "an empty caption" if tokens is None else "an empty caption (the folder name has no class token)")
        everything = len(missing) == len(sub.captions)
        severity = Severity.INFO if everything and tokens else Severity.WARN
        out.append(Finding(
            severity, f"{folder}: {len(missing)} of {len(sub.captions)} images have no {ext} caption: sd-scripts "
                      f"trains them with {uses}: {names(missing)}",
            detail="sd-scripts logs `No caption file found for N images. Training will continue without captions`.",
            fix=f"Add a {ext} file next to each image (same name), or rely on the class token on purpose.",
            cause="dataset.caption_missing", facts={"folder": str(sub.subset.image_dir), "missing": missing[:50]}))


def _not_utf8(ctx, pairs, out: list[Finding]) -> None:
    bad = [c for _, c, _ in pairs if c.status == "not_utf8"]
    if not bad:
        return
    by_enc: dict[str, list[str]] = {}
    for c in bad:
        by_enc.setdefault(c.encoding, []).append(c.path)
    for enc, paths in by_enc.items():
        label = ENCODING_LABELS.get(enc, enc)
        out.append(Finding(
            Severity.ERROR, f"{plural(len(paths), 'caption file')} are not UTF-8 (likely {label}): {names(paths)}",
            detail="sd-scripts stops with `illegal char in file (not UTF-8)` and a UnicodeDecodeError.\n" + listing(paths),
            fix="Convert them to UTF-8 (this rewrites the files listed; check one afterwards). In PowerShell (5.1 "
                "too; writes no BOM): " + powershell_command(paths, enc),
            fix_command=_convert_command(ctx.python, paths, enc), cause="dataset.caption_not_utf8",
            facts={"encoding": enc, "files": paths[:50]}))


def _length(ctx, pairs, out: list[Finding]) -> None:
    try:
        limit = opt_int(ctx.options, "max_token_length", None) or CLIP_WINDOW
    except ValueError:
        limit = CLIP_WINDOW
    long = [c for _, c, _ in pairs if c.status == "ok" and c.tokens > limit]
    if not long:
        return
    worst = max(long, key=lambda c: c.tokens)
    fix = ("Shorten them, or add --max_token_length=150 (or 225) to use up to 3 windows." if limit == CLIP_WINDOW
           else "Shorten them: tokens past --max_token_length are cut off.")
    out.append(Finding(
        Severity.WARN, f"{plural(len(long), 'caption')} are longer than {limit} tokens (estimated): the text encoder ignores "
                       f"the rest: {names([c.path for c in long])}",
        detail=f"e.g. {os.path.basename(worst.path)}: about {worst.tokens} tokens. The count is an estimate of "
               "CLIP's tokenizer made without its vocabulary (±20 %).",
        fix=fix, fix_command=corrected_command(ctx, set_={"max_token_length": "150"}) if limit == CLIP_WINDOW else ""))


def _tags(pairs, out: list[Finding]) -> None:
    texts = [c.text.lstrip("\ufeff") for _, c, _ in pairs if c.status == "ok"]
    if len(texts) < 2:
        return
    separator = pairs[0][2].subset.caption_separator or ","
    table = tag_table(texts, separator)
    top = ", ".join(f"{t} ({n})" for t, n in table.top(10))
    lines = [f"most frequent: {top}"]
    if table.in_every:
        lines.append(f"in every caption (trigger word): {', '.join(table.in_every[:5])}")
    else:
        lines.append("no tag is in every caption: there is no common trigger word")
    out.append(Finding(Severity.INFO, f"captions: {len(texts)} with {len(table.counts)} distinct tags"
                                      + (f"; trigger word {table.in_every[0]!r}" if table.in_every else ""),
                       detail="\n".join(lines),
                       facts={"top_tags": table.top(20), "in_every_caption": table.in_every[:20],
                              "near_duplicates": table.near_duplicates[:20]}))
    if table.near_duplicates:
        groups = "; ".join(" / ".join(g) for g in table.near_duplicates[:5])
        out.append(Finding(Severity.INFO, f"{len(table.near_duplicates)} tags are spelled more than one way: {groups}",
                           fix="Use one spelling per tag so the concept is learned once."))
