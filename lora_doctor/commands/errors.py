"""`lora-doctor errors list|show ID|test [PATH…]`: the known-error database, and checking your own
signature files before you rely on them."""

from __future__ import annotations

import sys

from lora_doctor.errors import UsageError
from lora_doctor.commands.common import add_plugin_dir


def add_parser(sub) -> None:
    p = sub.add_parser(
        "errors", help="list, show and test the known-error signatures",
        description="The known-error database (builtin, plugin packages, plugin folders). "
                    "`test` validates signature files: schema (with file and line), regexes, that every "
                    "example matches and no counter-example does, and that no two signatures claim one "
                    "example with equal rank. Exit code: 0 ok, 1 problems found, 2 usage error.")
    verbs = p.add_subparsers(dest="verb", metavar="ACTION")
    ls = verbs.add_parser("list", help="id, title and source file of every signature")
    show = verbs.add_parser("show", help="everything about one signature")
    show.add_argument("id", metavar="ID")
    test = verbs.add_parser("test", help="validate signature files (default: every loaded one)")
    test.add_argument("paths", nargs="*", metavar="PATH", help=".toml signature files or folders of them")
    for q in (ls, show, test):
        q.add_argument("--json", action="store_true", help="print JSON")
        add_plugin_dir(q)
        q.set_defaults(handler=run)
    p.set_defaults(handler=run, verb=None, plugin_dir=[], json=False)


def run(args) -> int:
    from lora_doctor.diagnose.match import load_signatures

    if args.verb is None:
        raise UsageError("say what to do: list, show ID or test [PATH…] (see lora-doctor errors --help)")
    if args.verb == "test" and args.paths:
        return _test_paths(args)
    db, _ = load_signatures(plugin_dirs=args.plugin_dir, strict=args.verb == "test")
    if args.verb == "list":
        return _list(db, args)
    if args.verb == "show":
        return _show(db, args)
    return _report_test(db, None, args)


def _rel(path: str) -> str:
    import os

    try:
        rel = os.path.relpath(path)
        return rel if not rel.startswith("..") else path
    except ValueError:
        return path


def _list(db, args) -> int:
    if args.json:
        from lora_doctor.output.render import print_json

        print_json({"signatures": [{"id": s.id, "title": s.title, "file": s.file, "line": s.line,
                                    "priority": s.priority} for s in db.signatures],
                    "errors": [str(e) for e in db.errors]})
        return 0
    width = max((len(s.id) for s in db.signatures), default=10)
    for s in sorted(db.signatures, key=lambda s: s.id):
        print(f"{s.id:<{width}}  {s.title}  ({_rel(s.file)}:{s.line})")
    print(f"\n{len(db.signatures)} signatures from {len(db.files)} file(s).")
    for e in db.errors:
        print(f"! {e}", file=sys.stderr)
    return 0


def _show(db, args) -> int:
    sig = db.get(args.id)
    if sig is None:
        close = [s.id for s in db.signatures if args.id.split(".")[-1] in s.id][:5]
        hint = f" (did you mean: {', '.join(close)}?)" if close else " (see `lora-doctor errors list`)"
        raise UsageError(f"no signature with id '{args.id}'{hint}")
    if args.json:
        from lora_doctor.output.render import print_json

        print_json({"id": sig.id, "title": sig.title, "severity": sig.severity, "priority": sig.priority,
                    "file": sig.file, "line": sig.line, "match": sig.raw.get("match", {}), "why": sig.why,
                    "fix": sig.fix, "edit": sig.edit, "refs": sig.refs, "examples": len(sig.examples),
                    "counter_examples": len(sig.counter_examples)})
        return 0
    print(f"{sig.id}: {sig.title}")
    print(f"  severity {sig.severity}, priority {sig.priority}, from {_rel(sig.file)}:{sig.line}")
    print("  match:")
    for key, value in sig.raw.get("match", {}).items():
        print(f"    {key} = {value!r}")
    if sig.why:
        print("  why:")
        for line in sig.why.splitlines():
            print(f"    {line}")
    print("  fix:")
    for i, step in enumerate(sig.fix, 1):
        print(f"    {i}. {step}")
    if sig.edit:
        from lora_doctor.diagnose.match import describe_edit

        print(f"  command edit: {describe_edit(sig.edit)}")
    for ref in sig.refs:
        print(f"  see: {ref}")
    print(f"  {len(sig.examples)} example(s), {len(sig.counter_examples)} counter-example(s)")
    if sig.examples:
        print("  first example:")
        for line in sig.examples[0]["log"].strip().splitlines()[-12:]:
            print(f"    | {line[:150]}")
    return 0


def _test_paths(args) -> int:
    from pathlib import Path

    from lora_doctor.diagnose.match import load_signatures
    from lora_doctor.diagnose.signatures import BUILTIN_PLUGIN_PREFIX, SignatureError, iter_toml, load_database

    for raw in args.paths:
        path = Path(raw)
        if not path.exists():
            raise UsageError(f"{raw}: no such file or folder")
        if path.is_file() and path.suffix.lower() != ".toml":
            hint = (" (a .py plugin is checked by `lora-doctor plugins --plugin-dir FOLDER`)"
                    if path.suffix.lower() == ".py" else "")
            raise UsageError(f"{raw} is not a signature file: `errors test` takes .toml signature files "
                             f"([[signature]] tables, see docs/signatures.md) or folders of them{hint}")
    mine = load_database([(Path(p), f"folder:{p}") for p in args.paths], strict=True)
    files = {str(f) for p in args.paths for f in iter_toml(Path(p))}
    if not files:
        raise UsageError("no .toml files in " + ", ".join(args.paths))
    # test them together with the rest of the database, so rank clashes with it show up
    rest, _ = load_signatures(plugin_dirs=args.plugin_dir)
    builtin = {s.id: s for s in rest.signatures if s.plugin.startswith(BUILTIN_PLUGIN_PREFIX) and s.file not in files}
    for sig in [s for s in mine.signatures if s.id in builtin]:  # what diagnose would refuse
        mine.errors.append(SignatureError(sig.file, sig.line, f"id '{sig.id}' is a builtin signature's "
                                          f"({builtin[sig.id].where}): it would be refused; give yours an id of "
                                          "your own family", sig.id))
        mine.signatures.remove(sig)
    mine_ids = {s.id for s in mine.signatures}
    mine.signatures += [s for s in rest.signatures if s.id not in mine_ids and s.file not in files]
    return _report_test(mine, files, args)


def _report_test(db, files, args) -> int:
    from lora_doctor.diagnose.sigtest import check

    load_errors = [e for e in db.errors if files is None or e.file in files]
    problems = check(db, files)
    fatal = [str(e) for e in load_errors if e.fatal] + [str(p) for p in problems if p.fatal]
    warnings = [str(e) for e in load_errors if not e.fatal] + [str(p) for p in problems if not p.fatal]
    tested = [s for s in db.signatures if files is None or s.file in files]
    if args.json:
        from lora_doctor.output.render import print_json

        print_json({"signatures": len(tested), "examples": sum(len(s.examples) for s in tested),
                    "problems": fatal, "warnings": warnings})
    else:
        for line in fatal:
            print(f"✗ {line}")
        for line in warnings:
            print(f"! {line}")
        n_ex = sum(len(s.examples) + len(s.counter_examples) for s in tested)
        status = "✗" if fatal else "✓"
        print(f"{status} {len(tested)} signature(s), {n_ex} example(s) checked: "
              f"{len(fatal)} problem(s), {len(warnings)} warning(s).")
    return 1 if fatal else 0
