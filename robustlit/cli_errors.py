"""How the command line reports bad input: one line, ``error: <field>: <reason>``, exit status 2.

jsonargparse reports a wrong config value as a tree of every alternative it tried (a Union's other members,
every subclass form), after a usage dump of the whole Trainer (~50 lines); a model or data module that fails
while being built (a missing weights file, a shape mismatch) comes out as 80 lines of chained traceback around
one useful line. :func:`condense` walks jsonargparse's message tree to the innermost real reason and the
dotted key that leads to it, and adds "did you mean" for mistyped names (attacks, class paths, options).

The full message and traceback stay one flag away: ``robustlit --traceback ...`` or ``ROBUSTLIT_TRACEBACK=1``
(``JSONARGPARSE_DEBUG=1`` also raises jsonargparse's own exception). docs/faults.md.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import sys
from argparse import Action
from typing import Any, NoReturn

from jsonargparse import DefaultHelpFormatter

from robustlit.utils.config_files import RobustArgumentParser
from robustlit.utils.errors import FieldError, did_you_mean

TRACEBACK_ENV = "ROBUSTLIT_TRACEBACK"
TRACEBACK_FLAG = "--traceback"
#: lines of jsonargparse's message tree that explain the search, not the problem
_NOISE = re.compile(
    r"^(Does not validate against any of the Union subtypes|Subtypes:|Errors:|Given value( type)?:|"
    r"Expected a <class 'NoneType'>|Not a valid subclass of|Subclass types expect one of|a class path \(str\)|"
    r"a dict with|a dict without|Expected a path but|- ?$)"
)
#: a member of a Union that only says the value is not of its form; a sibling that states a rule is preferred
_WEAK = re.compile(r"^(Unexpected import path format|Expected a <class |Import path )")
_EXPECTED = re.compile(r"^Expected a <class '([^']+)'>$")
#: the longest reason printed for a message that is not jsonargparse's tree
_LONGEST = 400
_KEY = re.compile(r'^Parser key "([^"]+)":\s*(.*)$')
_CLASS = re.compile(r"^Problem with given class_path '([^']+)':\s*(.*)$")
_SUBTYPES = {"RobustClassifier": "model", "RobustDataModule": "data", "Callback": "trainer.callbacks"}
#: what to add to the reason when a field of this name is missing or wrong
HINTS = {
    "normalization": "state how the model expects its inputs: inside (it normalises [0, 1] inputs itself), data "
    "(the data module's mean/std) or {mean: [...], std: [...]} (docs/interop.md)",
}


def traceback_requested() -> bool:
    """Whether the user asked for full tracebacks (``--traceback`` or ``ROBUSTLIT_TRACEBACK=1``)."""
    return os.environ.get(TRACEBACK_ENV, "").lower() not in ("", "0", "false", "no")


def _tree(message: str) -> list[tuple[int, str]]:
    """(indent, text) per non-empty line; a bullet ``- x`` counts as x indented by two more."""
    nodes = []
    for raw in message.splitlines():
        text = raw.rstrip()
        if not text.strip():
            continue
        indent = len(text) - len(text.lstrip())
        text = text.strip()
        while text.startswith("- "):
            indent, text = indent + 2, text[2:].strip()
        nodes.append((indent, text))
    return nodes


def _ancestors(nodes: list[tuple[int, str]], index: int) -> list[str]:
    """The lines above ``nodes[index]`` with ever smaller indentation (outermost first)."""
    chain, level = [], nodes[index][0]
    for indent, text in reversed(nodes[:index]):
        if indent < level:
            chain.append(text)
            level = indent
    return chain[::-1]


def _field(chain: list[str]) -> tuple[str, str | None]:
    """The dotted key of a chain of ``Parser key`` / ``Problem with given class_path`` lines, and the innermost
    class path (for "did you mean" among its options)."""
    field, klass = "", None
    for text in chain:
        key, problem = _KEY.match(text), _CLASS.match(text)
        if key:
            name = key.group(1)
            if not field:
                field = name
            elif klass is not None and field in ("model", "data"):
                field = f"{field}.init_args.{name}"
            elif klass is not None and field.endswith("callbacks"):
                field = f"{field}[{klass.rpartition('.')[2]}].{name}"
            else:
                field = f"{field}.{name}"
            klass = None
        elif problem:
            klass = problem.group(1)
    return field, klass


def _leaves(nodes: list[tuple[int, str]]) -> list[int]:
    """Indices of the lines that state a problem (not structure, not noise), deepest first."""
    found = []
    for i, (indent, text) in enumerate(nodes):
        key, problem = _KEY.match(text), _CLASS.match(text)
        if (key or problem) and not (key or problem).group(2):  # type: ignore[union-attr]
            continue
        if _NOISE.match(text) or (i + 1 < len(nodes) and nodes[i + 1][0] > indent and not (key or problem)):
            continue
        found.append(i)
    return sorted(found, key=lambda i: -len(_ancestors(nodes, i)))


def _inline(text: str) -> str:
    """The reason of a ``Parser key "x": reason`` or ``Problem with given class_path 'C': reason`` line."""
    key, problem = _KEY.match(text), _CLASS.match(text)
    return (key or problem).group(2) if (key or problem) else text  # type: ignore[union-attr]


def _options_of(class_path: str) -> list[str]:
    """The init arguments of a class and its bases (subclasses pass ``**kwargs`` up)."""
    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return []
    names: list[str] = []
    for base in inspect.getmro(cls) if inspect.isclass(cls) else []:
        init = base.__dict__.get("__init__")
        if init is None:
            continue
        try:
            names += [p for p in inspect.signature(init).parameters if p not in ("self", "args", "kwargs")]
        except (TypeError, ValueError):
            continue
    return list(dict.fromkeys(names))


def _suggest(reason: str, klass: str | None) -> str:
    """Add "did you mean" to a reason that names a mistyped option, class or module."""
    if match := re.match(r"Option '([^']+)' is not accepted", reason):
        return f"unknown option {match.group(1)!r}{did_you_mean(match.group(1), _options_of(klass or ''))}"
    if match := re.match(r"module '([^']+)' has no attribute '([^']+)'", reason):
        module, name = match.groups()
        try:
            found = importlib.import_module(module)
            names = [n for n in dir(found) if inspect.isclass(getattr(found, n)) and not n.startswith("_")]
        except ImportError:
            names = []
        return f"{module} has no class {name!r}{did_you_mean(name, names)}"
    if match := re.match(r"No module named '([^']+)'", reason):
        parent, _, child = match.group(1).rpartition(".")
        try:
            package = importlib.import_module(parent) if parent else None
            siblings = [m.name for m in pkgutil.iter_modules(package.__path__)] if package else []
        except (ImportError, AttributeError):
            siblings = []
        return reason + did_you_mean(child, siblings)
    return reason


def condense(message: str) -> tuple[str, str]:
    """``(field, reason)`` of a jsonargparse error message: the innermost stated problem and its dotted key."""
    nodes = _tree(message)
    if not nodes:
        return "config", message.strip()
    if match := re.search(r'Key "([^"]+)" is required', message):
        field = match.group(1)
        hint = HINTS.get(field.rpartition(".")[2])
        return field, "required, but not given" + (f": {hint}" if hint else "")
    if match := re.match(r"unrecognized arguments: (.*)", nodes[0][1], flags=re.IGNORECASE):
        return "arguments", f"unrecognized: {match.group(1)}"
    texts = [text for _, text in nodes]
    if not any(_KEY.match(t) or _CLASS.match(t) or _NOISE.match(t) or t.startswith("the following") for t in texts):
        return _plain_message(texts)
    leaves = _leaves(nodes)
    index = _strongest(nodes, leaves) if leaves else 0
    chain = _ancestors(nodes, index) + [nodes[index][1]]
    field, klass = _field(chain)
    if not field:
        subtypes = next((t for t in texts if t.startswith("Subtypes:")), "")
        field = next((g for name, g in _SUBTYPES.items() if name in subtypes), "config")
    reason = _suggest(_inline(nodes[index][1]), klass)
    if expected := _EXPECTED.match(reason):  # every member of a Union refused the value: name them all
        siblings = _siblings(nodes, index)
        names = [m.group(1) for i in siblings if (m := _EXPECTED.match(nodes[i][1]))]
        given = next((t.partition(": ")[2] for t in texts if t.startswith("Given value:")), "")
        reason = f"expected {' or '.join(names or [expected.group(1)])}" + (f"; got {given!r}" if given else "")
    if match := re.match(r"the following arguments are required: ([\w.]+)", reason):
        name = match.group(1)
        field = f"{field}.init_args.{name}" if field in ("model", "data") else f"{field}.{name}" if field else name
        reason = "required, but not given"
    reason = re.sub(r'^(Not of type \w+: )?AttackSpec "name": ', "", reason)
    hint = HINTS.get(field.rpartition(".")[2])
    if hint and hint not in reason:
        reason = f"{reason}; {hint}"
    return field, reason


def _strongest(nodes: list[tuple[int, str]], leaves: list[int]) -> int:
    """The deepest leaf, preferring a stated rule (``Not of type FinitePositiveFloat: ...``) to a sibling that only
    says which other form the value is not (``Unexpected import path format``, ``Expected a <class 'bool'>``)."""
    depth = len(_ancestors(nodes, leaves[0]))
    deepest = [i for i in leaves if len(_ancestors(nodes, i)) == depth]
    return next((i for i in deepest if not _WEAK.match(_inline(nodes[i][1]))), deepest[0])


def _siblings(nodes: list[tuple[int, str]], index: int) -> list[int]:
    """The lines with the same parent line and indentation as ``nodes[index]`` (itself included)."""
    parent, level = _ancestors(nodes, index)[-1:], nodes[index][0]
    return [i for i, (indent, _) in enumerate(nodes) if indent == level and _ancestors(nodes, i)[-1:] == parent]


def _plain_message(texts: list[str]) -> tuple[str, str]:
    """``(field, reason)`` of a message that is not jsonargparse's tree (a config file that is not YAML, an error
    raised while building a class): its lines joined, at most :data:`_LONGEST` characters."""
    yaml = re.match(r"config file .+ is not valid YAML: ", texts[0])
    reason = " ".join([texts[0].removeprefix("config file ") if yaml else texts[0], *texts[1:]])
    return "config", reason if len(reason) <= _LONGEST else reason[: _LONGEST - 3] + "..."


def build_error(error: BaseException) -> FieldError:
    """A one-line :class:`FieldError` for an exception raised while the CLI built the model, data or callbacks."""
    if isinstance(error, FieldError):  # the CLI's own, with its whole key (jsonargparse wraps a class's)
        return error
    field, reason = condense(str(error))
    own = _own_error(error)
    if own is not None and own.reason in reason:  # our own error names its field inside the class (source.path)
        group = field.split(".init_args", 1)[0]
        field = f"{group}.init_args.{own.field}" if group in ("model", "data") else f"{field}.{own.field}"
        reason = own.reason
    return FieldError(field, reason)


def _own_error(error: BaseException) -> FieldError | None:
    """A :class:`FieldError` among the exceptions that led to ``error`` (jsonargparse keeps them as context)."""
    seen, todo = set(), [error]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, FieldError):
            return current
        todo += [e for e in (current.__cause__, current.__context__) if e is not None]
    return None


class ShortSubclassListFormatter(DefaultHelpFormatter):
    """jsonargparse's help formatter, listing at most :attr:`shown` known subclasses of a type: an ``nn.Module``
    argument (``backbone``) would otherwise list every module class torch defines (about 700 names)."""

    shown = 12

    def _get_help_string(self, action: Action) -> str:
        text = super()._get_help_string(action)
        head, marker, tail = text.partition(", known subclasses: ")
        if not marker:
            return text
        listed, _, rest = tail.rpartition(")")
        names = [n.strip() for n in listed.split(",") if n.strip()]
        if len(names) <= self.shown:
            return text
        # robustlit's models first (a backbone), then its other classes, then the rest
        rank = {"robustlit.models.": 0, "robustlit.": 1}
        ordered = sorted(names, key=lambda n: next((r for p, r in rank.items() if n.startswith(p)), 2))
        kept = ordered[: self.shown]
        more = f" and {len(names) - len(kept)} more; any importable class path is accepted"
        return f"{head}{marker}{', '.join(kept)}{more}){rest}"


class RobustLitParser(RobustArgumentParser):
    """The CLI's parser: :class:`~robustlit.utils.config_files.RobustArgumentParser` (a later config file's list
    replaces the earlier one whole; a YAML error names the file) whose errors are one line ``error: <field>:
    <reason>`` (exit 2) without the usage dump; ``--traceback`` / ``ROBUSTLIT_TRACEBACK=1`` prints jsonargparse's
    whole message instead. Its help lists a few known subclasses of a type, not all
    (:class:`ShortSubclassListFormatter`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", ShortSubclassListFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        if traceback_requested() or not self.exit_on_error:
            super().error(message, ex)
        field, reason = condense(message)
        if field == "arguments":
            flags = [s for a in self._actions for s in a.option_strings]
            bad = reason.split()[1].split("=")[0] if len(reason.split()) > 1 else ""
            reason += did_you_mean(bad, flags)
        self.refuse(field, reason)

    def refuse(self, field: str, reason: str) -> NoReturn:
        """Refuse the value of ``field`` (a dotted config key) as bad input: ``error: <field>: <reason>``, exit 2.
        The CLI's own checks (:mod:`robustlit.cli_checks`) call this with the field they found."""
        if traceback_requested() or not self.exit_on_error:
            super().error(f"{field}: {reason}")
        prog = self.prog.replace(" [options]", "")
        sys.stderr.write(
            f"error: {field}: {reason}\n(`{prog} --help` lists the options; {TRACEBACK_FLAG} shows the whole message)\n"
        )
        raise SystemExit(2)


def print_error(error: BaseException | str, code: int) -> int:
    """Print ``error: <message>`` on stderr (one line) and return ``code``."""
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    sys.stderr.write(f"error: {message}\n(run with {TRACEBACK_FLAG} for the full traceback)\n")
    return code


def strip_traceback_flag(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--traceback``, and whether it was there."""
    return [a for a in argv if a != TRACEBACK_FLAG], TRACEBACK_FLAG in argv


__all__ = [
    "HINTS",
    "TRACEBACK_ENV",
    "RobustLitParser",
    "build_error",
    "condense",
    "print_error",
    "strip_traceback_flag",
    "traceback_requested",
]
