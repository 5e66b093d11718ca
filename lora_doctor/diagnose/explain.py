"""Explain sd-scripts' own error messages: which check in sd-scripts printed them, on which options.

An explanation is not a diagnosis: it names no cause. It says what sd-scripts checked (in words
generated from the code, never the code itself), the options that check reads, where it is
(`library/train_util.py:4833 in get_optimizer`) and in which sd-scripts versions the message exists.

Two halves:
- extraction (`extract_messages`): read one Python file with `ast` and list its user-facing aborts
  (`raise X(msg)`, `assert cond, msg`, an error log or print followed by return/exit/raise), each
  with its message as a template and a regex, the condition in words and the options it reads.
  `tools/sdscripts_catalogue.py` runs it over every sd-scripts release to build the catalogue
  (`lora_doctor/data/sdscripts_messages.json`); here it re-reads a user's own checkout so the
  explanation fits their version.
- matching (`explain_parsed`, `explain_lines`, `explain_text`): find catalogued messages in a log —
  any case, inside markdown quotes or backticks, or only the English or only the Japanese half of
  sd-scripts' "English / 日本語" messages. Each message has a literal anchor; a log is searched for
  anchors with plain substring checks, and a message's regex runs only where its anchor is.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import re
from pathlib import Path

CATALOGUE = "sdscripts_messages.json"
MAX_EXPLANATIONS = 5
MIN_ANCHOR = 8  # characters of literal text a message (or half) needs to be found in a log
MAX_CONDITION = 400

ARGS_NAMES = frozenset({"args", "argparse_namespace"})
_LOG_METHODS = frozenset({"error", "critical", "exception", "fatal"})
_PRINTS = frozenset({"print"})  # print(...), accelerator.print(...)
_EXIT_CALLS = frozenset({"exit", "quit", "sys.exit", "os._exit", "os.abort"})
LOOKAHEAD = 3  # statements after an error log/print in which an abort must come

_CJK_CHARS = "\u3000-\u30ff\u3400-\u9fff\uff00-\uffef"
_CJK = re.compile(f"[{_CJK_CHARS}]")
_CJK_GAP = re.compile(f"(?<=[{_CJK_CHARS}]) (?=[{_CJK_CHARS}])")
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?([diouxXeEfFgGcrsa%])")
_SPLITS = (" / ", "\n")  # between the English and the Japanese half


# -- message templates -------------------------------------------------------------------------
# A template is a list of parts: str (literal text) or Ph(name) (a value filled in at run time).
class Ph(str):
    """A placeholder in a message template (its name is the expression's name)."""


def _merge(parts: list) -> list:
    out: list = []
    for p in parts:
        if isinstance(p, Ph):
            if out and isinstance(out[-1], Ph):
                continue
            out.append(p)
        elif p:
            if out and not isinstance(out[-1], Ph):
                out[-1] = out[-1] + p
            else:
                out.append(str(p))
    return out


def template_text(parts: list) -> str:
    """The readable message: literal text with {name} where a value goes (literal braces doubled)."""
    return "".join("{" + p + "}" if isinstance(p, Ph) else p.replace("{", "{{").replace("}", "}}") for p in parts)


_TEMPLATE_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


def parse_template(text: str) -> list:
    """The inverse of template_text."""
    parts: list = []
    pos = 0
    for m in _TEMPLATE_FIELD.finditer(text):
        parts.append(text[pos:m.start()])
        parts.append(m.group(0)[0] if m.group(1) is None else Ph(m.group(1)))
        pos = m.end()
    parts.append(text[pos:])
    return _merge(parts)


def _literal_letters(parts: list) -> int:
    return sum(sum(c.isalpha() for c in p) for p in parts if not isinstance(p, Ph))


def pattern_of(parts: list) -> str:
    """The message as a regex: literal parts escaped (whitespace runs as \\s+), values as .+? ;
    values at either end dropped (the regex is searched, not matched whole)."""
    parts = list(parts)
    while parts and isinstance(parts[0], Ph):
        parts.pop(0)
    while parts and isinstance(parts[-1], Ph):
        parts.pop()
    out = []
    for p in parts:
        if isinstance(p, Ph):
            out.append(".+?")
        else:
            out.append(r"\s+".join(re.escape(w) for w in re.split(r"\s+", p)))
    return "".join(out)


def message_id(pattern: str) -> str:
    """A stable id from the normalised pattern."""
    norm = re.sub(r"(?:\\s\+)+", " ", pattern).lower()
    return "sds." + hashlib.sha1(norm.encode("utf-8")).hexdigest()[:12]


def halves(parts: list) -> tuple[list, list] | None:
    """sd-scripts' "English / 日本語" messages split into their halves, else None."""
    for sep in _SPLITS:
        split = _halves_at(parts, sep)
        if split:
            return split
    return None


def _halves_at(parts: list, sep: str) -> tuple[list, list] | None:
    for i, p in enumerate(parts):
        if isinstance(p, Ph):
            continue
        start = 0
        while (k := p.find(sep, start)) >= 0:
            start = k + 1
            left = _merge(parts[:i] + [p[:k]])
            right = _merge([p[k + len(sep):]] + parts[i + 1:])
            ltext = "".join(x for x in left if not isinstance(x, Ph))
            rtext = "".join(x for x in right if not isinstance(x, Ph))
            lcjk, rcjk = bool(_CJK.search(ltext)), bool(_CJK.search(rtext))
            if lcjk != rcjk and re.search("[A-Za-z]{3}", ltext if rcjk else rtext):
                return (left, right) if rcjk else (right, left)
    return None


# -- conditions in words -----------------------------------------------------------------------
def _dotted(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def option_of(node) -> str | None:
    """`args.X` / `getattr(args, "X", …)` -> "X"."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ARGS_NAMES:
        return node.attr
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
            and len(node.args) >= 2 and isinstance(node.args[0], ast.Name) and node.args[0].id in ARGS_NAMES
            and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
        return node.args[1].value
    return None


def options_read(node) -> set[str]:
    out = set()
    for sub in ast.walk(node):
        opt = option_of(sub)
        if opt:
            out.add(opt)
    return out


def _names(node) -> list[str]:
    seen: list[str] = []
    for sub in ast.walk(node):
        name = None
        opt = option_of(sub)
        if opt:
            name = "--" + opt
        elif isinstance(sub, ast.Name) and sub.id not in ARGS_NAMES and sub.id != "self":
            name = sub.id
        elif isinstance(sub, ast.Attribute) and not isinstance(sub.value, (ast.Name, ast.Attribute)):
            name = sub.attr
        if name and name not in seen:
            seen.append(name)
    return seen


def _humanize(ident: str) -> str:
    return ident.strip("_").replace("_", " ")


def _joined(items: list[str], last: str = "and") -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {last} " + items[-1]


_CMP = {"Eq": ("is", "is not"), "NotEq": ("is not", "is"), "Lt": ("is less than", "is at least"),
        "LtE": ("is at most", "is greater than"), "Gt": ("is greater than", "is at most"),
        "GtE": ("is at least", "is less than"), "In": ("is one of", "is not one of"),
        "NotIn": ("is not one of", "is one of"), "Is": ("is", "is not"), "IsNot": ("is not", "is")}
_ARITH = {"Add": "plus", "Sub": "minus", "Mult": "times", "Div": "divided by", "FloorDiv": "divided by",
          "Mod": "modulo", "Pow": "to the power of"}
_PATH_TESTS = {"exists": ("exists", "does not exist"), "isfile": ("is a file", "is not a file"),
               "isdir": ("is a folder", "is not a folder"), "is_file": ("is a file", "is not a file"),
               "is_dir": ("is a folder", "is not a folder"), "isabs": ("is an absolute path", "is a relative path"),
               "is_absolute": ("is an absolute path", "is a relative path")}


def noun(node) -> str:
    """An expression as a noun phrase, from names and values only."""
    opt = option_of(node)
    if opt:
        return "--" + opt
    if isinstance(node, ast.Constant):
        v = node.value
        if v is None:
            return "nothing"
        if isinstance(v, str):
            return '""' if not v else '"' + (v if len(v) <= 40 else v[:37] + "...") + '"'
        return repr(v)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        dotted = _dotted(node)
        if dotted:
            return dotted[5:] if dotted.startswith("self.") else dotted
        return node.attr
    if isinstance(node, ast.Call):
        func = _dotted(node.func) or ""
        last = node.func.attr if isinstance(node.func, ast.Attribute) else func
        args = node.args
        if func == "len" and len(args) == 1:
            return f"the number of {noun(args[0])}"
        if func in ("str", "int", "float", "bool", "list", "tuple", "set", "Path") and len(args) == 1:
            return noun(args[0])
        if last in ("lower", "upper", "strip", "casefold") and isinstance(node.func, ast.Attribute):
            base = node.func.value
            if isinstance(base, ast.Constant) and isinstance(base.value, str):
                return noun(ast.Constant(getattr(base.value, last)()))
            return noun(base)
        if func in ("os.path.basename",) and len(args) == 1:
            return f"the file name of {noun(args[0])}"
        if func in ("os.path.dirname",) and len(args) == 1:
            return f"the folder of {noun(args[0])}"
        if func in ("os.path.splitext",) and len(args) == 1:
            return f"the name and extension of {noun(args[0])}"
        if func in ("max", "min", "sum", "abs") and args:
            word = {"max": "the largest of", "min": "the smallest of", "sum": "the sum of", "abs": "the size of"}[func]
            return f"{word} {_joined([noun(a) for a in args])}"
        if func in ("os.listdir", "glob.glob") and args:
            return f"the files in {noun(args[0])}"
        if isinstance(node.func, ast.Attribute) and last in ("keys", "values", "items") and not args:
            return f"the {last} of {noun(node.func.value)}"
        if isinstance(node.func, ast.Attribute) and last == "get" and args:
            return f"entry {noun(args[0])} of {noun(node.func.value)}"
        inner = ", ".join(noun(a) for a in args[:3]) + (", …" if len(args) > 3 else "")
        if not func and isinstance(node.func, ast.Attribute):
            return f"{last} of {noun(node.func.value)}" + (f" with {inner}" if inner else "")
        return f"{func or 'a call'}({inner})"
    if isinstance(node, ast.BinOp):
        word = _ARITH.get(type(node.op).__name__)
        if word:
            return f"{noun(node.left)} {word} {noun(node.right)}"
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return f"minus {noun(node.operand)}"
    if isinstance(node, ast.Subscript):
        key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, int):
            ordinal = {0: "the first item", 1: "the second item", -1: "the last item"}.get(key.value,
                                                                                          f"item {key.value}")
            return f"{ordinal} of {noun(node.value)}"
        if isinstance(key, ast.Slice):
            return f"part of {noun(node.value)}"
        return f"entry {noun(key)} of {noun(node.value)}"
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)) and len(node.elts) <= 12:
        return _joined([noun(e) for e in node.elts], "or")
    names = _names(node)
    return f"a value computed from {_joined(names)}" if names else "a computed value"


def truth(node, negate: bool = False) -> str:
    """An expression in a boolean context, as a sentence (negated when `negate`)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        return truth(node.operand, not negate)
    if isinstance(node, ast.BoolOp):
        is_and = isinstance(node.op, ast.And) != negate  # De Morgan
        flags = [option_of(v) for v in node.values]
        if all(flags) and len(flags) >= 2:
            names = _joined([f"--{f}" for f in flags], "and" if is_and else "or")
            if negate:
                return names + (" are both not set" if len(flags) == 2 and is_and else
                                " are all not set" if is_and else " are not all set")
            if is_and:
                return names + (" are both set" if len(flags) == 2 else " are all set")
            return names + " is set"
        parts = []
        for v in node.values:
            text = truth(v, negate)
            if isinstance(v, ast.BoolOp) or (isinstance(v, ast.UnaryOp) and isinstance(v.operand, ast.BoolOp)):
                text = f"({text})"
            parts.append(text)
        return (" and " if is_and else " or ").join(parts)
    if isinstance(node, ast.Compare):
        sentences = []
        left = node.left
        for op, right in zip(node.ops, node.comparators):
            sentences.append(_compare(left, type(op).__name__, right, negate))
            left = right
        return (" or " if negate else " and ").join(sentences)
    opt = option_of(node)
    if opt and not (isinstance(node, ast.Call) and node.func.id == "hasattr"):  # type: ignore[union-attr]
        return f"--{opt} is {'not set' if negate else 'set'}"
    if isinstance(node, ast.Call):
        return _predicate(node, negate)
    if isinstance(node, ast.Constant):
        return ("never" if bool(node.value) else "always") if negate else ("always" if bool(node.value) else "never")
    if isinstance(node, (ast.Name, ast.Attribute)):
        return f"{noun(node)} is {'false or empty' if negate else 'true'}"
    return f"{noun(node)} is {'false or empty' if negate else 'true'}"


def _compare(left, op: str, right, negate: bool) -> str:
    words = _CMP.get(op, ("compares to", "does not compare to"))[1 if negate else 0]
    if op in ("Is", "IsNot", "Eq", "NotEq") and isinstance(right, ast.Constant) and right.value is None:
        given = (op in ("Is", "Eq")) == negate
        return f"{noun(left)} is {'set' if given else 'not set'}"
    if op in ("Is", "IsNot", "Eq", "NotEq") and isinstance(right, ast.Constant) and isinstance(right.value, bool):
        value = right.value if op in ("Is", "Eq") else not right.value
        return f"{noun(left)} is {'true' if value != negate else 'false'}"
    if op in ("In", "NotIn") and isinstance(right, (ast.Tuple, ast.List, ast.Set)):
        return f"{noun(left)} {words} {noun(right)}"
    if op in ("In", "NotIn"):
        return f"{noun(left)} is {'not ' if (op == 'In') == negate else ''}in {noun(right)}"
    return f"{noun(left)} {words} {noun(right)}"


def _predicate(node, negate: bool) -> str:
    func = _dotted(node.func) or ""
    last = node.func.attr if isinstance(node.func, ast.Attribute) else func
    args = node.args
    yes, no = ("", "not ")
    if func == "isinstance" and len(args) == 2:
        return f"{noun(args[0])} is {no if negate else yes}a {noun(args[1])}"
    if func == "hasattr" and len(args) == 2:
        target = "--" + args[1].value if option_of(node) else None
        if target:
            return f"{target} {'does not exist' if negate else 'exists'} among the options"
        return f"{noun(args[0])} {'does not have' if negate else 'has'} {noun(args[1])}"
    if func in ("any", "all") and len(args) == 1:
        inner = args[0]
        if isinstance(inner, (ast.GeneratorExp, ast.ListComp)):
            body = truth(inner.elt)
            src = noun(inner.generators[0].iter)
            quant = "any" if func == "any" else "every"
            text = f"for {quant} item of {src}, {body}"
            return f"it is not true that {text}" if negate else text
        return f"{'not ' if negate else ''}{func} of {noun(inner)} {'are' if func == 'all' else 'is'} true"
    if last in _PATH_TESTS:
        subject = noun(args[0]) if args else noun(node.func.value) if isinstance(node.func, ast.Attribute) else "the path"
        return f"the path {subject} {_PATH_TESTS[last][1 if negate else 0]}"
    if last in ("startswith", "endswith") and isinstance(node.func, ast.Attribute) and args:
        verb = "starts" if last == "startswith" else "ends"
        return f"{noun(node.func.value)} {'does not ' + verb[:-1] if negate else verb} with {noun(args[0])}"
    if last in ("isdigit", "isnumeric", "isdecimal") and isinstance(node.func, ast.Attribute):
        return f"{noun(node.func.value)} is {no if negate else yes}a number"
    if isinstance(node.func, ast.Attribute) and re.match(r"(is|has|can|should|does|uses?)_", node.func.attr):
        verb, _, rest = node.func.attr.partition("_")
        subject = noun(node.func.value)
        extra = f" ({', '.join(noun(a) for a in args[:3])})" if args else ""
        if negate:
            verb = {"is": "is not", "has": "does not have", "can": "cannot", "should": "should not",
                    "does": "does not", "use": "does not use", "uses": "does not use"}[verb]
        elif verb == "use":
            verb = "uses"
        return f"{subject} {verb} {_humanize(rest)}{extra}"
    return f"{noun(node)} is {'false or empty' if negate else 'true'}"


# -- extraction --------------------------------------------------------------------------------
def _name_of(node) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Subscript):
        return _name_of(node.value)
    if isinstance(node, ast.Call):
        return _name_of(node.func)
    return "value"


def _format_parts(text: str, values: list) -> list:
    """'{} of {x}'.format(…) -> parts."""
    import string

    parts: list = []
    try:
        fields = list(string.Formatter().parse(text))
    except ValueError:
        return [text]
    auto = 0
    for literal, field, _spec, _conv in fields:
        parts.append(literal)
        if field is None:
            continue
        name = field.split(".")[0].split("[")[0]
        if not name and auto < len(values):
            name = _name_of(values[auto])
            auto += 1
        elif name.isdigit() and int(name) < len(values):
            name = _name_of(values[int(name)])
        parts.append(Ph(name or "value"))
    return parts


def _percent_parts(text: str, values: list) -> list:
    parts: list = []
    pos, i = 0, 0
    for m in _PERCENT.finditer(text):
        parts.append(text[pos:m.start()])
        if m.group(1) == "%":
            parts.append("%")
        else:
            parts.append(Ph(_name_of(values[i]) if i < len(values) else "value"))
            i += 1
        pos = m.end()
    parts.append(text[pos:])
    return parts


def message_parts(node, resolve=None) -> list:
    """A message expression as template parts; anything not literal becomes a placeholder."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        parts: list = []
        for v in node.values:
            if isinstance(v, ast.Constant) and isinstance(v.value, str):
                parts.append(v.value)
            elif isinstance(v, ast.FormattedValue):
                inner = v.value
                if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                    parts.append(inner.value)
                else:
                    parts.append(Ph(_name_of(inner)))
        return _merge(parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _merge(message_parts(node.left, resolve) + message_parts(node.right, resolve))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
        left = message_parts(node.left, resolve)
        if len(left) == 1 and not isinstance(left[0], Ph):
            values = node.right.elts if isinstance(node.right, ast.Tuple) else [node.right]
            return _merge(_percent_parts(left[0], values))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"):
        base = message_parts(node.func.value, resolve)
        if len(base) == 1 and not isinstance(base[0], Ph):
            return _merge(_format_parts(base[0], list(node.args)))
    if isinstance(node, ast.Name) and resolve is not None:
        value = resolve(node.id)
        if value is not None:
            return message_parts(value, None)
    return [Ph(_name_of(node))]


def _call_name(node) -> str:
    if isinstance(node, ast.Expr):
        node = node.value
    if isinstance(node, ast.Call):
        return _dotted(node.func) or ""
    return ""


def _is_report(stmt) -> bool:
    """print(…), accelerator.print(…), logger.error(…) and the like."""
    name = _call_name(stmt)
    last = name.rsplit(".", 1)[-1]
    return last in _PRINTS or ("." in name and last in _LOG_METHODS)


_ERROR_WORDS = re.compile(r"\b(?:no|not|error|invalid|cannot|can't|fail(?:ed|s)?|must|please|unknown|missing|"
                          r"abort(?:ing)?|unsupported|required|illegal|wrong)\b", re.IGNORECASE)


def _is_abort(stmt) -> bool:
    """return / raise / exit(…) (exit(0) is a normal end)."""
    if isinstance(stmt, (ast.Raise, ast.Return)):
        return True
    if _call_name(stmt) in _EXIT_CALLS:
        args = stmt.value.args
        return not (args and isinstance(args[0], ast.Constant) and args[0].value in (0, None))
    return False


def _is_error_report(stmt) -> bool:
    return _call_name(stmt).rsplit(".", 1)[-1] in _LOG_METHODS


def _report_parts(call, resolve) -> list:
    args = [a for a in call.args if not isinstance(a, ast.Starred)]
    if not args:
        return []
    name = _dotted(call.func) or ""
    if name.rsplit(".", 1)[-1] in _LOG_METHODS and len(args) > 1:  # logger.error("… %s", value)
        first = message_parts(args[0], resolve)
        if len(first) == 1 and not isinstance(first[0], Ph):
            return _merge(_percent_parts(first[0], args[1:]))
    parts: list = []
    for i, a in enumerate(args):
        if i:
            parts.append(" ")
        parts += message_parts(a, resolve)
    return _merge(parts)


def _is_either(test, negate: bool) -> bool:
    """Does the test read as "A or B" (it needs parentheses among other conditions)?"""
    while isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        test, negate = test.operand, not negate
    return isinstance(test, ast.BoolOp) and isinstance(test.op, ast.Or) != negate


def _as_options(test, scope):
    """The test with each local name that holds an option as it was read (`x = args.x`) shown as
    that option."""
    import copy

    swap = {n: v for n, v in scope.assigned.items() if option_of(v)}
    if not swap or not any(isinstance(n, ast.Name) and n.id in swap for n in ast.walk(test)):
        return test

    class Swap(ast.NodeTransformer):
        def visit_Name(self, node):
            return copy.deepcopy(swap[node.id]) if node.id in swap else node

    return Swap().visit(copy.deepcopy(test))


class _Scope:
    def __init__(self, function: str):
        self.function = function
        self.assigned: dict[str, object] = {}  # local name -> the last expression assigned to it


def extract_messages(source: str, relpath: str) -> list[dict]:
    """The user-facing aborts of one Python file, in line order. Each: kind, exception, message
    (template) or None, pattern, file, function, line, condition (words), options."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    out: list[dict] = []

    def site(kind, exception, parts, stmt, conds, scope, own_test=None):
        if parts is not None and _literal_letters(parts) < 3:
            parts = None
        options: set[str] = set()
        for test, _neg in conds + ([(own_test, False)] if own_test is not None else []):
            if test is None or isinstance(test, str):
                continue
            options |= options_read(test)
            for sub in ast.walk(test):
                if isinstance(sub, ast.Name) and sub.id in scope.assigned:
                    options |= options_read(scope.assigned[sub.id])
        if parts is None and not options:
            return  # an internal check with nothing to say and no option involved
        words = []
        if own_test is not None:
            own_test = _as_options(own_test, scope)
        for test, neg in conds:
            words.append(test if isinstance(test, str) else truth(_as_options(test, scope), neg))
        if len(words) + (own_test is not None) > 1:
            words = [f"({w})" if _is_either(test, neg) else w for w, (test, neg) in zip(words, conds)]
        if own_test is not None:
            condition = f"unless {truth(own_test)}"
            if words:
                condition += f" (checked when {' and '.join(words)})"
        elif words:
            condition = "when " + " and ".join(words)
        else:
            condition = f"whenever {scope.function} reaches it" if scope.function != "<module>" else "always"
        if len(condition) > MAX_CONDITION:
            condition = condition[:MAX_CONDITION - 1] + "…"
        entry = {"kind": kind, "exception": exception, "file": relpath, "function": scope.function,
                 "line": stmt.lineno, "condition": condition, "options": sorted(options)}
        if parts is not None:
            entry["message"] = template_text(parts)
            entry["pattern"] = pattern_of(parts)
            entry["id"] = message_id(entry["pattern"])
            split = halves(parts)
            if split:
                entry["halves"] = [pattern_of(split[0]), pattern_of(split[1])]
        else:
            entry["message"] = None
            entry["pattern"] = None
            entry["id"] = message_id(f"{relpath}|{scope.function}|{kind}|{condition}")
        out.append(entry)

    def block(stmts, conds, scope):
        for i, stmt in enumerate(stmts):
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                block(stmt.body, [], _Scope(stmt.name))
                continue
            if isinstance(stmt, ast.ClassDef):
                block(stmt.body, [], _Scope("<class " + stmt.name + ">"))
                continue
            if isinstance(stmt, ast.If):
                block(stmt.body, conds + [(stmt.test, False)], scope)
                elif_only = len(stmt.orelse) == 1 and isinstance(stmt.orelse[0], ast.If)
                block(stmt.orelse, conds if elif_only else conds + [(stmt.test, True)], scope)
                continue
            if isinstance(stmt, ast.Try) or type(stmt).__name__ == "TryStar":
                block(stmt.body, conds, scope)
                for h in stmt.handlers:
                    caught = "an error was raised" if h.type is None else f"{noun(h.type)} was raised"
                    block(h.body, conds + [(caught, False)], scope)
                block(stmt.orelse, conds, scope)
                block(stmt.finalbody, conds, scope)
                continue
            if isinstance(stmt, (ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith)):
                block(stmt.body, conds, scope)
                block(getattr(stmt, "orelse", []), conds, scope)
                continue
            if type(stmt).__name__ == "Match":
                for case in stmt.cases:
                    block(case.body, conds, scope)
                continue
            if isinstance(stmt, ast.Assign):
                for t in stmt.targets:
                    if isinstance(t, ast.Name):
                        scope.assigned[t.id] = stmt.value
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
                scope.assigned[stmt.target.id] = stmt.value

            def resolve(name, scope=scope):
                return scope.assigned.get(name)

            if isinstance(stmt, ast.Raise) and isinstance(stmt.exc, ast.Call):
                exc = _dotted(stmt.exc.func) or "Exception"
                arg = stmt.exc.args[0] if stmt.exc.args else None
                parts = message_parts(arg, resolve) if arg is not None else None
                site("raise", exc.rsplit(".", 1)[-1], parts, stmt, conds, scope)
            elif isinstance(stmt, ast.Raise) and isinstance(stmt.exc, (ast.Name, ast.Attribute)) \
                    and _name_of(stmt.exc)[:1].isupper():
                site("raise", _name_of(stmt.exc), None, stmt, conds, scope)
            elif isinstance(stmt, ast.Assert):
                parts = message_parts(stmt.msg, resolve) if stmt.msg is not None else None
                site("assert", "AssertionError", parts, stmt, conds, scope, own_test=stmt.test)
            elif _call_name(stmt) in _EXIT_CALLS and stmt.value.args:
                arg = stmt.value.args[0]  # exit("message") prints it; exit(1) is only a code
                if not (isinstance(arg, ast.Constant) and not isinstance(arg.value, str)):
                    parts = message_parts(arg, resolve)
                    if parts and _literal_letters(parts) >= 3:
                        site("exit", "SystemExit", parts, stmt, conds, scope)
            elif _is_report(stmt):
                following = stmts[i + 1:i + 1 + LOOKAHEAD]
                error = _is_error_report(stmt)
                for nxt in following:
                    if _is_abort(nxt):
                        parts = _report_parts(stmt.value, resolve)
                        literal = "".join(p for p in parts if not isinstance(p, Ph))
                        plain_return = isinstance(nxt, ast.Return) and not error
                        if parts and (error or not plain_return or _ERROR_WORDS.search(literal)):
                            site("log", None, parts, stmt, conds, scope)
                        break
                    if not _is_report(nxt):
                        break

    block(tree.body, [], _Scope("<module>"))
    return out


# -- the catalogue -----------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def catalogue() -> dict:
    """The generated catalogue (lora_doctor/data/sdscripts_messages.json), loaded once."""
    from importlib import resources

    try:
        text = resources.files("lora_doctor.data").joinpath(CATALOGUE).read_text("utf-8")
        data = json.loads(text)
    except (OSError, ValueError, ModuleNotFoundError):
        return {"versions": [], "messages": []}
    data.setdefault("messages", [])
    return data


def versions_text(entry: dict) -> str:
    first, last = entry.get("first", ""), entry.get("last", "")
    if not first:
        return ""
    if first == last:
        return "main only (unreleased)" if first == "main" else first
    return f"{first}–{last}"


_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!<>|~])")
_MD_QUOTE = re.compile(r"^\s*(?:>\s*)+")
_WS = re.compile(r"\s+")


def normalize(text: str) -> str:
    """A log line as messages are compared: lower case, markdown quotes/backticks/escapes and
    emphasis gone, whitespace runs as one space, no space between CJK characters."""
    text = _MD_QUOTE.sub("", text.lower())
    text = _MD_ESCAPE.sub(r"\1", text).replace("`", "").replace("**", "")
    text = _WS.sub(" ", text).strip()
    return _CJK_GAP.sub("", text) if " " in text else text


def _normalize_literal(text: str) -> str:
    text = text.lower().replace("`", "").replace("**", "")
    return _CJK_GAP.sub("", _WS.sub(" ", text))


def _ascii_word(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "_")


class _Variant:
    __slots__ = ("entry", "which", "parts", "anchor", "_rx", "open_start", "open_end", "multiline")

    def __init__(self, entry: dict, which: str, parts: list):
        self.entry, self.which, self.parts = entry, which, parts
        literals = [_normalize_literal(p).strip() for p in parts if not isinstance(p, Ph)]
        self.anchor = max(literals, key=len) if literals else ""
        self._rx = None
        self.open_start = bool(parts) and isinstance(parts[0], Ph)  # a value may run into the text around
        self.open_end = bool(parts) and isinstance(parts[-1], Ph)
        self.multiline = any("\n" in p.strip() for p in parts if not isinstance(p, Ph))

    def search(self, text: str):
        """The first match that does not start or end inside a word ("error: x" is not in "KeyError: x")."""
        for m in self.rx.finditer(text):
            a, b = m.start(), m.end()
            if not self.open_start and 0 < a < len(text) and _ascii_word(text[a]) and _ascii_word(text[a - 1]):
                continue
            if not self.open_end and 0 < b < len(text) and _ascii_word(text[b - 1]) and _ascii_word(text[b]):
                continue
            return m
        return None

    @property
    def rx(self) -> re.Pattern:
        if self._rx is None:
            parts = list(self.parts)
            while parts and isinstance(parts[0], Ph):
                parts.pop(0)
            while parts and isinstance(parts[-1], Ph):
                parts.pop()
            out = []
            for p in parts:
                if isinstance(p, Ph):
                    out.append(".+?")
                else:
                    out.append(re.escape(_normalize_literal(p)))
            self._rx = re.compile("".join(out))
        return self._rx


class _Index:
    """Anchors of every catalogued message (and half); bare checks by (file name, function)."""

    def __init__(self, messages: list[dict]):
        self.by_anchor: dict[str, list[_Variant]] = {}
        self.bare: dict[tuple[str, str], list[dict]] = {}
        for entry in messages:
            if not entry.get("message"):
                key = (entry["file"].rsplit("/", 1)[-1], entry["function"])
                self.bare.setdefault(key, []).append(entry)
                continue
            parts = parse_template(entry["message"])
            variants = [_Variant(entry, "message", parts)]
            split = halves(parts)
            if split:
                variants += [_Variant(entry, "english", split[0]), _Variant(entry, "japanese", split[1])]
            for v in variants:
                if len(v.anchor) >= MIN_ANCHOR or (v.which == "message" and len(v.anchor) >= 5):
                    self.by_anchor.setdefault(v.anchor, []).append(v)


@functools.lru_cache(maxsize=1)
def _index() -> _Index:
    return _Index(catalogue()["messages"])


# -- matching ----------------------------------------------------------------------------------
def _find(texts: list[str], breaks_only: set[int] = frozenset()) -> list[tuple[int, int, int, _Variant, str]]:
    """(text index, start, end, variant, the log text) for every catalogued message found; in the
    texts `breaks_only` names (two lines joined) only a message with a line break counts."""
    index = _index()
    norms = [normalize(t) for t in texts]
    joined = "\n".join(norms)
    hits = []
    for anchor, variants in index.by_anchor.items():
        if anchor not in joined:
            continue
        for ti, text in enumerate(norms):
            if anchor not in text:
                continue
            for v in variants:
                if ti in breaks_only and not v.multiline:
                    continue
                m = v.search(text)
                if m is not None:
                    hits.append((ti, m.start(), m.end(), v, texts[ti]))
    return hits


def _best(hits) -> list[tuple[int, _Variant, str]]:
    """One hit per message; a hit inside a longer hit on the same text is dropped; the whole
    message beats a half; in log order."""
    hits = sorted(hits, key=lambda h: (h[0], -(h[2] - h[1]), h[3].which != "message"))
    kept: list = []
    for h in hits:
        ti, start, end, v, _text = h
        if any(k[0] == ti and k[1] <= start and end <= k[2] and (k[2] - k[1]) > (end - start) for k in kept):
            continue
        kept.append(h)
    seen: dict[str, tuple] = {}
    for h in kept:
        eid = h[3].entry["id"]
        if eid not in seen or (seen[eid][3].which != "message" and h[3].which == "message"):
            seen[eid] = h
    return [(h[0], h[3], h[4]) for h in sorted(seen.values(), key=lambda h: (h[0], h[1]))]


def _explanation(entry: dict, which: str, log_text: str | None, site: dict | None = None) -> dict:
    site = site or entry
    return {"id": entry["id"], "source": f"{site['file']}:{site['line']}", "function": site["function"],
            "condition": site["condition"], "options": list(site.get("options", ())),
            "versions": versions_text(entry), "message": entry.get("message") or "",
            "exception": entry.get("exception") or "", "matched": which, "from": "catalogue",
            "log": _redact((log_text or "").strip())[:300]}


def _redact(text: str) -> str:
    from lora_doctor.redact import redact_text

    return redact_text(text)


# A line of Python source a traceback shows (plain, or in a rich box): its message literals are not
# what was printed, and the lines around a frame may hold other checks' messages.
_SOURCE_LINE = re.compile(r"""^\s*(?:[│┃|]\s*\d+\s*[│┃|]|(?:raise|assert|elif|if)\b|[)\],]*\s*[rfbu]?["']|"""
                          r"""(?:\w+\.)*(?:error|critical|warning|info|print)\()""")


_FRAME_LINE = re.compile(r'^\s*File "|^\s*[\^~ ]+$')


def _printed(lines: list[str]) -> list[str]:
    """The lines without a traceback's source lines, except the statement that raised (the source
    line the exception line follows: sd-scripts' own `raise …(f"…")` says which check it was)."""
    out = []
    for i, t in enumerate(lines):
        if _SOURCE_LINE.match(t):
            after = next((x for x in lines[i + 1:] if x.strip() and not re.match(r"^\s*[\^~]+\s*$", x)), None)
            if after is not None and (_FRAME_LINE.match(after) or _SOURCE_LINE.match(after)):
                continue
        out.append(t)
    return out


_RECORD_SOURCE = re.compile(r"\s+[\w.\-]+\.py:\d+\s*$")  # rich's source column, at a folded record's end


def _texts(lines) -> tuple[list[str], set[int]]:
    """The log lines to search (each once), then each line joined to the next; and the joined
    texts in which only a message with a line break may be found (a record folded at the console
    width, its first line ending in rich's source column, is one message: any may be found in it)."""
    singles = list(dict.fromkeys(t[:4096] for t in lines if t and t.strip()))
    texts, breaks_only = list(singles), set()
    for a, b in zip(singles, singles[1:]):
        folded = _RECORD_SOURCE.search(a)
        if not folded:
            breaks_only.add(len(texts))
        texts.append(f"{a[:folded.start()] if folded else a} {b.strip()}")
    return texts, breaks_only


def explain_lines(lines, checkout: Path | None = None) -> list[dict]:
    """Explanations for catalogued sd-scripts messages among these log lines (best first)."""
    texts, breaks_only = _texts(_printed(list(lines)))
    out = [_explanation(v.entry, v.which, text) for _, v, text in _best(_find(texts, breaks_only))]
    return _checked(out[:MAX_EXPLANATIONS], checkout)


def explain_text(text: str, checkout: Path | None = None) -> list[dict]:
    """Explanations for a whole log held in memory (for a large log, prefer `explain_parsed`)."""
    return explain_lines(text.splitlines(), checkout)


def explain_parsed(parsed, checkout: Path | None = None) -> list[dict]:
    """Explanations for what the log parser kept of a log (bounded whatever the log's size): the
    failures' messages, the ERROR records, the lines around each failure and the log's last lines."""
    from lora_doctor.diagnose.logparse import chain

    lines: list[str] = []
    failures = parsed.ordered_failures()
    for top in failures:
        for f in reversed(chain(top)):
            message = " ".join(line.strip() for line in f.message.split("\n"))
            lines.append(f"{f.exception}: {message}" if f.exception else message)
    lines += list(parsed.errors)
    for top in failures:
        lines += _printed(parsed.excerpt(top))
    lines += _printed(list(parsed.tail))
    texts, breaks_only = _texts(lines)
    raised = [(normalize(f"{f.exception}: {f.message}"), _base(f.frames[-1].file))
              for top in failures for f in chain(top) if f.frames]
    found = []
    for _, v, text in _best(_find(texts, breaks_only)):
        site = _raising_site(v, raised)
        if site is not None:
            found.append(_explanation(v.entry, v.which, text, site or None))
    for top in failures:  # checks without a message: the bare exception raised in a known function
        for f in chain(top):
            if f.message.strip() or not f.frames:
                continue
            found += _bare(f, checkout)
    seen: set[str] = set()
    unique = [e for e in found if not (e["id"] in seen or seen.add(e["id"]))]
    return _checked(unique[:MAX_EXPLANATIONS], checkout)


def _base(path: str) -> str:
    return re.split(r"[\\/]", path)[-1]


def _raising_site(v: _Variant, raised: list[tuple[str, str]]) -> dict | None:
    """Where an exception with this message was raised, when the log's traceback shows it: the
    catalogued place in that file ({} when no traceback shows it), or None when the traceback
    shows another file (torch, for one, has messages sd-scripts copied)."""
    entry = v.entry
    if entry.get("kind") == "log":
        return {}
    files = [entry] + list(entry.get("also", ()))
    shown = [where for text, where in raised if v.search(text) is not None]
    if not shown:
        return {}
    for where in shown:
        site = next((s for s in files if _base(s["file"]) == where), None)
        if site is not None:
            return site
    return None


def _bare(failure, checkout: Path | None) -> list[dict]:
    frame = failure.frames[-1]
    name = _base(frame.file)
    entries = [e for e in _index().bare.get((name, frame.function), ())
               if e.get("exception") == failure.exception_name]
    if checkout is not None:
        mine = _checkout_bare(checkout, frame, failure.exception_name)
        if mine is not None:
            return [mine]
    if not entries or len(entries) > 3:
        return []
    return [_explanation(e, "location", f"{failure.exception} in {frame.function}") for e in entries]


# -- the user's checkout -----------------------------------------------------------------------
@functools.lru_cache(maxsize=32)
def _read_file(path: str, mtime: float) -> tuple[dict, ...]:
    try:
        source = Path(path).read_text("utf-8", errors="replace")
    except OSError:
        return ()
    rel = Path(path).name
    return tuple(extract_messages(source, rel))


def _sites(checkout: Path, relpath: str) -> list[dict]:
    path = checkout / relpath
    try:
        mtime = path.stat().st_mtime
    except OSError:
        return []
    return [dict(s, file=relpath) for s in _read_file(str(path), mtime)]


def _from_checkout(explanation: dict, site: dict, checkout: Path) -> dict:
    out = dict(explanation)
    out.update(source=f"{site['file']}:{site['line']}", function=site["function"], condition=site["condition"],
               options=list(site["options"]), **{"from": "checkout", "checkout": str(checkout)})
    return out


def _checked(explanations: list[dict], checkout: Path | None) -> list[dict]:
    """Where the user's checkout is known, the condition and line as their copy has them."""
    if checkout is None:
        return explanations
    entries = {e["id"]: e for e in catalogue()["messages"]}
    out = []
    for x in explanations:
        if x.get("from") == "checkout":
            out.append(x)
            continue
        entry = entries.get(x["id"], {})
        files = [x["source"].rsplit(":", 1)[0], entry.get("file", "")] + [a["file"] for a in entry.get("also", ())]
        site = None
        for rel in dict.fromkeys(files):
            site = next((s for s in _sites(checkout, rel) if s["id"] == x["id"]), None)
            if site is not None:
                break
        out.append(_from_checkout(x, site, checkout) if site is not None else x)
    return out


def _checkout_bare(checkout: Path, frame, exception_name: str) -> dict | None:
    parts = re.split(r"[\\/]", frame.file)
    for depth in (2, 1):  # library/train_util.py, then train_network.py
        rel = "/".join(parts[-depth:])
        for s in _sites(checkout, rel):
            if s["line"] == frame.line and s["exception"] == exception_name:
                entry = {**s, "first": "", "last": ""}
                return _from_checkout(_explanation(entry, "location", f"{exception_name} in {frame.function}"),
                                      s, checkout)
    return None


def find_checkout(launch=None, failures=(), cwd: Path | None = None) -> Path | None:
    """The user's sd-scripts checkout: the command's script folder (or this folder, as
    `lora-doctor run` finds it), else a folder the log's own frames point to, when it exists here."""
    from lora_doctor.context import find_sd_scripts

    cwd = cwd or Path.cwd()
    try:
        found = find_sd_scripts(launch, None, cwd)
    except OSError:
        found = None
    if found is not None:
        return found
    from lora_doctor.diagnose.logparse import chain

    for top in failures:
        for f in chain(top):
            for fr in f.frames:
                parts = re.split(r"[\\/]", fr.file)
                if len(parts) < 3 or parts[-2] not in ("library", "networks"):
                    continue
                root = Path("/".join(parts[:-2]) or "/")
                try:
                    if (root / "library" / "train_util.py").is_file():
                        return root.resolve()
                except OSError:
                    continue
    return None


# -- on the terminal ---------------------------------------------------------------------------
def explanation_lines(explanations: list[dict], limit: int = 2) -> list[str]:
    """A few lines per explanation: what sd-scripts checked, on which options, where."""
    out: list[str] = []
    for x in explanations[:limit]:
        what = x.get("exception") or "an error it logs"
        out.append(f"sd-scripts' own check ({what}, {x['source']} in {x['function']}):")
        out.append(f"  it stops {x['condition']}")
        if x.get("options"):
            out.append("  options involved: " + " ".join("--" + o for o in x["options"]))
        where = "your checkout" if x.get("from") == "checkout" else (x.get("versions") or "")
        if where:
            out.append(f"  (as in {where})" if x.get("from") == "checkout" else f"  (sd-scripts {where})")
    return out


def explain_report(parsed, launch=None) -> list[dict]:
    """The explanations `lora-doctor diagnose` reports (never raises: an explanation is extra)."""
    try:
        failures = parsed.ordered_failures()
        return explain_parsed(parsed, find_checkout(launch, failures))
    except Exception:  # noqa: BLE001 - a broken catalogue or checkout must not cost the diagnosis
        return []
