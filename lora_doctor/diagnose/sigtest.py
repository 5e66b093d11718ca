"""Test signatures against their own examples: each example must match, no counter-example may,
and no two signatures may claim one example with equal rank."""

from __future__ import annotations

from dataclasses import dataclass

from lora_doctor.diagnose.logparse import parse_text
from lora_doctor.diagnose.match import PostMortem, add_standalone_failures, match_signature, message_locators
from lora_doctor.diagnose.scanner import LineScanner, RegexGuard
from lora_doctor.diagnose.signatures import Database, Signature


@dataclass
class Problem:
    where: str
    message: str
    fatal: bool = True

    def __str__(self) -> str:
        return f"{self.where}: {'' if self.fatal else 'warning: '}{self.message}"


def _launch(example: dict):
    command = example.get("command")
    if not command:
        return None
    import shlex

    from lora_doctor.launch.command import parse_command

    argv = shlex.split(command) if isinstance(command, str) else list(command)
    try:
        return parse_command(argv)
    except ValueError:
        return None


def matching(db: Database, sigs: list[Signature], example: dict, guard: RegexGuard):
    """The signatures of `sigs` that match an example log."""
    locators = message_locators(db)  # a message pasted alone counts, as in `diagnose`
    scanner = LineScanner([rx for s in sigs for rx in (*s.log_all, *s.log_any, *s.log_none)]
                          + list(locators.values()), guard)
    parsed = parse_text(example["log"], scanner)
    add_standalone_failures(parsed, scanner, locators, guard)
    from lora_doctor.diagnose.exit_marks import exit_cause

    code = example.get("exit_code")
    exit_ = exit_cause(code) if isinstance(code, int) else parsed.exit
    post = PostMortem(parsed, _launch(example), None, exit_, {})
    return [m for s in sigs if (m := match_signature(s, parsed, scanner, post, guard)) is not None]


def check(db: Database, only: set[str] | None = None) -> list[Problem]:
    """Every example and counter-example of the signatures (of files in `only`, when given)."""
    problems: list[Problem] = []
    mine = [s for s in db.signatures if only is None or s.file in only]
    with RegexGuard() as guard:
        for sig in mine:
            for i, ex in enumerate(sig.examples, 1):
                matches = matching(db, db.signatures, ex, guard)
                own = next((m for m in matches if m.sig is sig), None)
                if own is None:
                    problems.append(Problem(sig.where, f"{sig.id}: example {i} does not match ({_why_not(sig, ex)})"))
                    continue
                rank = (sig.priority, own.on_root, own.specificity)
                for m in matches:
                    if m.sig is sig:
                        continue
                    other = (m.sig.priority, m.on_root, m.specificity)
                    if other == rank:
                        problems.append(Problem(sig.where, f"{sig.id}: example {i} is also claimed by {m.sig.id} "
                                                f"({m.sig.where}) with equal rank; raise one's priority or make "
                                                "it stricter"))
                    elif other > rank:
                        problems.append(Problem(sig.where, f"{sig.id}: example {i} is diagnosed as {m.sig.id} "
                                                f"({m.sig.where}), which ranks higher", fatal=False))
            for i, ex in enumerate(sig.counter_examples, 1):
                if matching(db, [sig], ex, guard):
                    problems.append(Problem(sig.where, f"{sig.id}: counter-example {i} matches, but must not"))
    return problems


def _why_not(sig: Signature, example: dict) -> str:
    """A hint at which condition failed."""
    parsed = parse_text(example["log"])
    root = parsed.root
    if sig.needs_failure and root is None:
        return "no exception found in the example log"
    if sig.needs_failure and root is not None:
        return f"the log's failure is {root.exception or '(no exception line)'}: {root.message[:80]!r}"
    return "a log_all / log_any / log_none / exit_code condition does not hold"

