"""Pipeline parameters: read them from the notebooks, merge the user's sources, validate before running.

A notebook declares its parameters in its one cell tagged ``parameters``, one per line::

    alpha: float = 0.05  # significance level [gt: 0, lt: 1]
    dataset: str = "synthetic"  # corpus to train on [choices: synthetic | uci:amazon | uci:yelp]

The type hint is the parameter's type; the comment is its help text, and an optional trailing bracket
holds constraints: ``min``/``max`` (inclusive), ``gt``/``lt`` (exclusive) and ``choices`` (``|``-separated),
written ``name: value`` (papermill cannot parse a ``=`` inside the comment).
"""

from __future__ import annotations

import ast
import json
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from abkit.errors import ParameterError

#: Parameters that the pipeline sets itself; users choose them through ``--run-name``.
RESERVED = frozenset({"run_dir"})

_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}
_CONSTRAINT = re.compile(r"\[([a-z]+:[^\]]*)\]\s*$")
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


@dataclass(frozen=True)
class ParamSpec:
    """One declared notebook parameter: its type, default, help text and constraints."""

    name: str
    type: str
    default: Any
    help: str = ""
    minimum: float | None = None
    maximum: float | None = None
    greater_than: float | None = None
    less_than: float | None = None
    choices: tuple[str, ...] | None = None
    notebook: str = ""

    def allowed(self) -> str:
        """Describe the values this parameter accepts, for error messages."""
        parts = [f"{'an' if self.type == 'int' else 'a'} {self.type}"]
        if self.choices:
            parts = ["one of " + ", ".join(repr(c) for c in self.choices)]
        if self.minimum is not None:
            parts.append(f">= {self.minimum:g}")
        if self.greater_than is not None:
            parts.append(f"> {self.greater_than:g}")
        if self.maximum is not None:
            parts.append(f"<= {self.maximum:g}")
        if self.less_than is not None:
            parts.append(f"< {self.less_than:g}")
        return " ".join(parts)

    def check(self, value: Any) -> Any:
        """Return ``value`` coerced to this parameter's type, or raise ``ParameterError``."""
        value = self._coerce(value)
        problem = None
        if self.choices is not None and value not in self.choices:
            problem = "is not an allowed choice"
        elif self.type in ("int", "float"):
            if self.minimum is not None and value < self.minimum:
                problem = "is below the minimum"
            elif self.maximum is not None and value > self.maximum:
                problem = "is above the maximum"
            elif self.greater_than is not None and value <= self.greater_than:
                problem = "is too small"
            elif self.less_than is not None and value >= self.less_than:
                problem = "is too large"
        if problem:
            raise ParameterError(
                f"parameter {self.name!r} = {value!r} {problem}: it must be {self.allowed()} "
                f"({self.help or 'see ' + self.notebook}). Set it in your params file or with "
                f"-p {self.name}=VALUE."
            )
        return value

    def _coerce(self, value: Any) -> Any:
        ok = {
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "str": isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)),
            "bool": isinstance(value, bool),
        }[self.type]
        if not ok:
            raise ParameterError(
                f"parameter {self.name!r} = {value!r} has type {type(value).__name__}; "
                f"it must be {self.allowed()} ({self.help or 'see ' + self.notebook}). "
                f"Example: -p {self.name}={self.default!r}."
            )
        if self.type == "str":
            return str(value)  # a whole number given for a text parameter (a column position) reads as its digits
        return float(value) if self.type == "float" else value


def parse_parameters_cell(source: str, notebook: str = "") -> dict[str, ParamSpec]:
    """Read ``name: type = default  # help [constraints]`` lines of a ``parameters`` cell."""
    specs: dict[str, ParamSpec] = {}
    tree = ast.parse(source)
    lines = source.splitlines()
    for node in tree.body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            raise ParameterError(
                f"{notebook}: every line of the parameters cell must look like "
                f"'name: type = default  # help'; got {ast.get_source_segment(source, node)!r}."
            )
        name = node.target.id
        type_name = ast.unparse(node.annotation)
        if type_name not in _TYPES:
            raise ParameterError(
                f"{notebook}: parameter {name!r} has type {type_name!r}; use one of int, float, str, bool."
            )
        default = ast.literal_eval(node.value) if node.value is not None else None
        comment = lines[node.lineno - 1].partition("#")[2].strip()
        if "=" in comment:
            raise ParameterError(
                f"{notebook}: the comment of parameter {name!r} contains '=', which makes papermill drop "
                "the line; write 'means' or ':' instead (e.g. '(0 means off)', '[min: 0]')."
            )
        specs[name] = _with_constraints(name, type_name, default, comment, notebook)
    return specs


def _with_constraints(name: str, type_name: str, default: Any, comment: str, notebook: str) -> ParamSpec:
    fields: dict[str, Any] = {}
    match = _CONSTRAINT.search(comment)
    if match:
        comment = comment[: match.start()].strip()
        keys = {"min": "minimum", "max": "maximum", "gt": "greater_than", "lt": "less_than"}
        for item in match.group(1).split(","):
            key, _, raw = (part.strip() for part in item.partition(":"))
            if key == "choices":
                fields["choices"] = tuple(choice.strip() for choice in raw.split("|"))
            elif key in keys:
                fields[keys[key]] = float(raw)
            else:
                raise ParameterError(
                    f"{notebook}: parameter {name!r} has unknown constraint {key!r}; "
                    "use min, max, gt, lt or choices."
                )
    return ParamSpec(name, type_name, default, comment, notebook=notebook, **fields)


def notebook_parameters(path: str | Path) -> dict[str, ParamSpec]:
    """The parameters declared by the notebook at ``path`` (its one cell tagged ``parameters``)."""
    import nbformat

    nb = nbformat.read(str(path), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"{path}: found {len(cells)} cells tagged 'parameters'; a notebook needs exactly one.")
    return parse_parameters_cell(cells[0].source, Path(path).stem)


def known_parameters(notebooks: Iterable[str | Path]) -> dict[str, ParamSpec]:
    """Union of the parameters of several notebooks; a name declared twice must agree on its type."""
    known: dict[str, ParamSpec] = {}
    for path in notebooks:
        for name, spec in notebook_parameters(path).items():
            if name in known and known[name].type != spec.type:
                raise ParameterError(
                    f"parameter {name!r} is a {known[name].type} in {known[name].notebook} but a "
                    f"{spec.type} in {spec.notebook}; declare it with one type in every notebook."
                )
            known.setdefault(name, spec)
    return known


def load_params_file(path: str | Path) -> dict[str, Any]:
    """Read one YAML params file (a flat mapping); dates stay strings."""
    path = Path(path)
    if not path.is_file():
        raise ParameterError(f"params file {str(path)!r} does not exist; check the path passed to --params.")
    try:
        data = yaml.load(path.read_text(), Loader=_NoDatesLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ParameterError(
            f"params file {str(path)!r} is not valid YAML{where}: {getattr(exc, 'problem', exc)}. "
            "Write one 'name: value' per line."
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(
            f"params file {str(path)!r} holds a {type(data).__name__}, not a mapping; "
            "write one 'name: value' per line."
        )
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """Split a ``-p key=value`` override; the value is read as a YAML scalar (``3`` is an int)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ParameterError(f"-p {text!r} is not of the form key=value; for example -p seed=7.")
    try:
        value = yaml.load(raw, Loader=_NoDatesLoader) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def merge_params(files: Sequence[str | Path], overrides: Sequence[str]) -> dict[str, Any]:
    """Merge params files in order (later wins), then ``key=value`` overrides."""
    merged: dict[str, Any] = {}
    for path in files:
        merged.update(load_params_file(path))
    merged.update(parse_override(text) for text in overrides)
    return merged


def validate(params: Mapping[str, Any], known: Mapping[str, ParamSpec]) -> dict[str, Any]:
    """Check every parameter against the declared ones; return them coerced (ints to floats where declared)."""
    checked: dict[str, Any] = {}
    for name, value in params.items():
        if name in RESERVED:
            raise ParameterError(
                f"parameter {name!r} is set by the pipeline itself; choose the output folder with --run-name instead."
            )
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ParameterError(
                f"unknown parameter {name!r} = {value!r}.{hint} Known parameters: {', '.join(sorted(known))}."
            )
        checked[name] = known[name].check(value)
    return checked


def check_run_name(name: str) -> str:
    """Refuse run names that could escape the output folder or are awkward as folder names."""
    if not _RUN_NAME.match(name) or ".." in name:
        raise ParameterError(
            f"run name {name!r} is not allowed: use letters, digits, '.', '_' and '-' only "
            "(no path separators, no '..', at most 100 characters), e.g. --run-name trial-1."
        )
    return name


class _NoDatesLoader(yaml.SafeLoader):
    """A safe YAML loader that keeps ISO dates as strings, as notebook parameters expect."""


_NoDatesLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def describe(specs: Mapping[str, ParamSpec], notebook: str = "") -> str:
    """Every parameter as text for ``abkit params``: name, type, default, allowed range or choices, help."""

    def allowed(s: ParamSpec) -> str:
        if s.choices:
            return " | ".join(s.choices)
        low = f"≥ {s.minimum:g}" if s.minimum is not None else (f"> {s.greater_than:g}" if s.greater_than is not None else "")
        high = f"≤ {s.maximum:g}" if s.maximum is not None else (f"< {s.less_than:g}" if s.less_than is not None else "")
        return ", ".join(x for x in (low, high) if x) or "any"

    rows = [(s.name, s.type, json.dumps(s.default, ensure_ascii=False), allowed(s), s.help) for s in specs.values()]
    widths = [max([len(r[i]) for r in rows] + [len(h)]) for i, h in enumerate(("name", "type", "default", "allowed"))]
    lines = [f"{notebook}:" if notebook else ""] if notebook else []
    head = ("name", "type", "default", "allowed", "help")
    for r in [head, *rows]:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    return "\n".join(lines)
