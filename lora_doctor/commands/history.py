"""`lora-doctor history` (not built yet)."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("history", help="(not built yet)")
    p.set_defaults(handler=run)


def run(args) -> int:
    print("lora-doctor history: not built yet")
    return 2
