"""`lora-doctor plugins`: every loaded plugin, where it came from, its checks; broken ones with why;
the signature files of the plugin folders; the .py files there that are not plugins."""

from __future__ import annotations

from lora_doctor.commands.common import add_plugin_dir


def add_parser(sub) -> None:
    p = sub.add_parser("plugins", help="list loaded plugins, their origin and checks",
                       description="List every plugin (builtin, entry point, plugin folder) with where it "
                                   "came from and the check ids it registers (what --only and --skip take), "
                                   "broken ones with the reason, the signature files (.toml) of the plugin "
                                   "folders, and the plugin folders searched. A .py in a plugin folder is a "
                                   "plugin only when it holds `hookimpl`; others are listed as ignored. "
                                   "Exit code: 0 all loaded, 1 a plugin is broken, 2 usage.")
    add_plugin_dir(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def _folder_signatures(host) -> list[dict]:
    """One row per .toml of a plugin folder: its signature ids, or why it does not load."""
    from lora_doctor.diagnose.signatures import load_file

    rows = []
    for path, _source in host.signature_files:
        sigs, errors = load_file(path, f"folder:{path.parent}", strict=False)
        fatal = [str(e) for e in errors if e.fatal]
        rows.append({"path": str(path), "signatures": [s.id for s in sigs], "error": "; ".join(fatal) or None})
    return rows


def run(args) -> int:
    from lora_doctor.host.pluginmanager import PluginHost, plugin_dirs

    host = PluginHost(args.plugin_dir)
    host.checks()
    sources, sig_errors = host.signature_sources()
    rows = [{"name": p.name, "source": p.source, "location": p.location, "checks": p.checks,
             "error": p.error or (host.slow.get(p.name) and f"skipped: {host.slow[p.name]}") or None}
            for p in host.plugins]
    for name, err in sig_errors:
        rows.append({"name": name, "source": "signatures", "location": "", "checks": [], "error": err})
    signature_rows = _folder_signatures(host)
    ignored = [{"path": str(path), "reason": why} for path, why in host.ignored_files]
    broken = any(r["error"] for r in rows) or any(r["error"] for r in signature_rows)
    folders = [str(d) for d in plugin_dirs(args.plugin_dir)]
    if args.json:
        from lora_doctor.output.render import print_json

        print_json({"plugins": rows, "folders": folders, "signature_files": [str(p) for p, _ in sources],
                    "folder_signatures": signature_rows, "ignored": ignored})
        return 1 if broken else 0
    from lora_doctor.output.render import make_console

    console = make_console()
    for r in rows:
        mark = "✗" if r["error"] else "✓"
        console.print(f"[{mark}] {r['name']} ({r['source']}) {r['location']}")
        if r["checks"]:
            console.print(f"    checks: {', '.join(r['checks'])}")
        if r["error"]:
            console.print(f"    broken: {r['error']}", style="red")
    for s in signature_rows:
        mark = "✗" if s["error"] else "✓"
        console.print(f"[{mark}] {s['path']} (signatures, {len(s['signatures'])})")
        if s["signatures"]:
            console.print(f"    signatures: {', '.join(s['signatures'])}")
        if s["error"]:
            console.print(f"    broken: {s['error']} (details: lora-doctor errors test {s['path']})", style="red")
    for i in ignored:
        console.print(f"[–] {i['path']}: {i['reason']}")
    console.print("plugin folders: " + ", ".join(folders))
    return 1 if broken else 0
