"""`lora-doctor plugins`: every loaded plugin, where it came from, its checks; broken ones with why."""

from __future__ import annotations

from lora_doctor.commands.common import add_plugin_dir


def add_parser(sub) -> None:
    p = sub.add_parser("plugins", help="list loaded plugins, their origin and checks",
                       description="List every plugin (builtin, entry point, plugin folder) with where it "
                                   "came from and the check ids it registers (what --only and --skip take), "
                                   "broken ones with the reason, and the plugin folders searched. "
                                   "Exit code: 0 all loaded, 1 a plugin is broken, 2 usage.")
    add_plugin_dir(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def run(args) -> int:
    from lora_doctor.host.pluginmanager import PluginHost, plugin_dirs

    host = PluginHost(args.plugin_dir)
    host.checks()
    sources, sig_errors = host.signature_sources()
    rows = [{"name": p.name, "source": p.source, "location": p.location, "checks": p.checks,
             "error": p.error or None} for p in host.plugins]
    for name, err in sig_errors:
        rows.append({"name": name, "source": "signatures", "location": "", "checks": [], "error": err})
    broken = any(r["error"] for r in rows)
    if args.json:
        from lora_doctor.output.render import print_json

        print_json({"plugins": rows, "folders": [str(d) for d in plugin_dirs(args.plugin_dir)],
                    "signature_files": [str(p) for p, _ in sources]})
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
    console.print("plugin folders: " + ", ".join(str(d) for d in plugin_dirs(args.plugin_dir)))
    return 1 if broken else 0
