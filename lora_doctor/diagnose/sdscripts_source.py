"""Read sd-scripts' Python source for its user-facing aborts: `raise X(msg)`, `assert cond, msg`, an
error log or print followed by return/exit/raise. Each becomes a catalogue entry: the message as a
template and a regex (with its English and Japanese halves), the condition in words generated from
the syntax tree (never the code itself), and the options it reads.

`tools/sdscripts_catalogue.py` runs `extract_messages` over every sd-scripts release to build
`lora_doctor/data/sdscripts_messages.json`; `lora_doctor.diagnose.explain` runs it on a user's own
checkout so an explanation fits their version.
"""

from __future__ import annotations

import ast
import hashlib
import re

MAX_CONDITION = 400

ARGS_NAMES = frozenset({"args", "argparse_namespace"})
_LOG_METHODS = frozenset({"error", "critical", "exception", "fatal"})
_PRINTS = frozenset({"print"})  # print(...), accelerator.print(...)
_EXIT_CALLS = frozenset({"exit", "quit", "sys.exit", "os._exit", "os.abort"})
LOOKAHEAD = 3  # statements after an error log/print in which an abort must come

_CJK_CHARS = "\u3000-\u30ff\u3400-\u9fff\uff00-\uffef"
_CJK = re.compile(f"[{_CJK_CHARS}]")
CJK_GAP = re.compile(f"(?<=[{_CJK_CHARS}]) (?=[{_CJK_CHARS}])")
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


def pattern_of(parts: list, literal=None) -> str:
    """The message as a regex: literal parts escaped (by `literal`; by default whitespace runs as
    \\s+), values as .+? ; values at either end dropped (the regex is searched, not matched whole)."""
    literal = literal or (lambda text: r"\s+".join(re.escape(w) for w in re.split(r"\s+", text)))
    parts = list(parts)
    while parts and isinstance(parts[0], Ph):
        parts.pop(0)
    while parts and isinstance(parts[-1], Ph):
        parts.pop()
    return "".join(".+?" if isinstance(p, Ph) else literal(p) for p in parts)


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
