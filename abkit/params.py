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
import difflib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from abkit.errors import AbkitError, ParameterError
from abkit.names import is_name

#: Parameters that the pipeline sets itself; users choose them through ``--run-name``.
RESERVED = frozenset({"run_dir"})

_TYPES: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}
_DECIMAL = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_CONSTRAINT = re.compile(r"\[([a-z]+:[^\]]*)\]\s*$")


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
        if self.type == "float" and isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
            value = float(value)  # YAML 1.1 reads 1e-3 and 1.0e300 as strings
        if isinstance(value, float) and not math.isfinite(value) and self.type in ("int", "float"):
            raise ParameterError(
                f"parameter {self.name!r} = {value!r} is not a finite number; NaN and infinity make no sense "
                f"here: it must be {self.allowed()} ({self.help or 'see ' + self.notebook}). "
                f"Example: -p {self.name}={self.default!r}."
            )
        if isinstance(value, str) and self.type == "str" and not _is_text(value):
            raise ParameterError(
                f"parameter {self.name!r} = {value!r} holds bytes that are not text (a lone surrogate from an "
                "undecodable argument or file); write it in UTF-8."
            )
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


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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
                    f"{notebook}: parameter {name!r} has unknown constraint {key!r}; use min, max, gt, lt or choices."
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
    if path.is_dir():
        found = sorted(str(p) for p in path.glob("*.y*ml"))[:5]
        hint = f" such as {', '.join(found)}" if found else ""
        raise ParameterError(
            f"params file {str(path)!r} is a folder; pass one YAML file to --params{hint}, "
            "e.g. --params params/smoke.yaml."
        )
    if not path.is_file():
        raise ParameterError(f"params file {str(path)!r} does not exist; check the path passed to --params.")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ParameterError(
            f"params file {str(path)!r} is not UTF-8 text: byte {raw[exc.start]:#04x} at line {line} cannot be "
            "decoded; save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)."
        ) from exc
    try:
        data = yaml.load(text, Loader=_NoDatesLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ParameterError(
            f"params file {str(path)!r} is not valid YAML{where}: {getattr(exc, 'problem', exc)}. "
            "Write one 'name: value' per line."
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ParameterError(
            f"params file {str(path)!r} holds a {type(data).__name__}, not a mapping; write one 'name: value' per line."
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
        if not isinstance(name, str):
            raise ParameterError(
                f"parameter name {name!r} is a {type(name).__name__}; names are words such as 'seed' "
                "(write 'seed: 7', not '7: seed')."
            )
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ParameterError(
                f"unknown parameter {name!r} = {value!r}.{hint} Known parameters: {', '.join(sorted(known))}."
            )
        checked[name] = known[name].check(value)
    return checked


def effective_values(params: Mapping[str, Any], specs: Iterable[Mapping[str, ParamSpec]]) -> dict[str, Any]:
    """What the notebooks will see: each declared parameter's default, overridden by ``params``."""
    values: dict[str, Any] = {}
    for declared in specs:
        for name, spec in declared.items():
            if name not in RESERVED:
                values.setdefault(name, spec.default)
    return values | dict(params)


#: Notebook parameters that together define the experiment, and the ``Experiment.from_params`` argument each
#: becomes (as in ``00_setup``); an error in an experiment field is reported against its parameter.
_EXPERIMENT_ARGS = {
    "experiment_key": "key",
    "split": "split",
    "coverage": "coverage",
    "start_date": "start",
    "duration_days": "duration_days",
    "primary_metric": "primary_metric",
    "guardrail_latency_p95_ms": "guardrail_latency_p95_ms",
}
_EXPERIMENT_FIELDS = {
    "key": "experiment_key",
    "variant_names": "split",
    "variants[].weight": "split",
    "start": "start_date",
    "guardrails[].margin": "guardrail_latency_p95_ms",
}
_MODEL_PARAMS = ("champion_model", "challenger_model")
_MIX_PARAMS = ("domain_before", "domain_after")


def check_together(values: Mapping[str, Any]) -> None:
    """The checks a single parameter's type and range cannot make, run before any notebook starts.

    ``values`` are the effective values (``effective_values``); each check runs when the notebooks declare
    its parameters: the experiment definition (key, split, coverage, dates, metric and guardrail names) is
    built as ``00_setup`` builds it; traffic mixes parse; a drift needs a mix to drift to; model references
    and the dataset name something that exists. Raises ``ParameterError`` naming the parameter.
    """
    if "experiment_key" in values:
        _check_experiment(values)
    for name in _MIX_PARAMS:
        if name in values:
            _check_mix(name, values[name])
    if values.get("drift_day", -1) >= 0 and "domain_after" in values and not str(values["domain_after"]).strip():
        raise _bad(
            values,
            "drift_day",
            "a drift needs the mix traffic drifts to: set domain_after too "
            "(e.g. domain_after: restaurants), or drift_day: -1 for no drift.",
        )
    for name in _MODEL_PARAMS:
        if name in values:
            _check_model_reference(values, name)
    if "dataset" in values:
        _check_dataset(values)


def _bad(values: Mapping[str, Any], name: str, fix: str) -> ParameterError:
    return ParameterError(
        f"parameter {name!r} = {values[name]!r} is not valid: {fix} Set it in your params file or with -p {name}=VALUE."
    )


def _check_experiment(values: Mapping[str, Any]) -> None:
    from abkit.experiment import Experiment, ExperimentError

    args = {arg: values[name] for name, arg in _EXPERIMENT_ARGS.items() if name in values}
    if not args.get("guardrail_latency_p95_ms"):
        args.pop("guardrail_latency_p95_ms", None)  # 0 means no guardrail, as in 00_setup
    try:
        Experiment.from_params(variant_names="champion,challenger", **args)
    except ExperimentError as exc:
        field_name = getattr(exc, "field", "")
        param = _EXPERIMENT_FIELDS.get(field_name, field_name if field_name in values else "experiment_key")
        raise ParameterError(
            f"parameter {param!r} = {values.get(param)!r} is not valid: {exc} "
            f"Set it in your params file or with -p {param}=VALUE."
        ) from exc


def _check_mix(name: str, value: Any) -> None:
    from abkit.simulate import parse_mix

    try:
        parse_mix(value)
    except AbkitError as exc:
        raise ParameterError(
            f"parameter {name!r} = {value!r} is not a traffic mix: {exc} "
            f"Set it in your params file or with -p {name}=VALUE."
        ) from exc


def _check_model_reference(values: Mapping[str, Any], name: str) -> None:
    from abkit.models import BUILTIN_KINDS

    ref = values[name]
    if ref in BUILTIN_KINDS or _exists(ref):
        return
    if re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", ref):
        _check_factory_imports(values, name)
        return
    raise _bad(
        values,
        name,
        f"give one of {', '.join(BUILTIN_KINDS)}, a factory 'package.module:function' "
        "or the folder of a saved model (no such folder exists).",
    )


def _check_factory_imports(values: Mapping[str, Any], name: str) -> None:
    """A ``module:function`` model imports (from ``models_path`` or the project folder) as 00_setup would."""
    from abkit.models import _import_factory, use_models_path

    if "models_path" in values:
        try:
            use_models_path(values["models_path"] or "")
        except AbkitError as exc:
            raise _bad(values, "models_path", str(exc)) from exc
    try:
        _import_factory(values[name])
    except AbkitError as exc:
        raise _bad(values, name, str(exc)) from exc


def _exists(path: str, *, file: bool = False) -> bool:
    try:
        return Path(path).is_file() if file else Path(path).exists()
    except (OSError, ValueError):  # a NUL byte, a name too long: no such file
        return False


def _check_dataset(values: Mapping[str, Any]) -> None:
    from abkit.data import UCI_DOMAINS

    kind, _, arg = str(values["dataset"]).partition(":")
    if values["dataset"] == "synthetic" or (kind == "uci" and arg in (*UCI_DOMAINS, "all", "")):
        return
    if kind == "table" and arg:
        if _exists(arg, file=True):
            return
        raise _bad(
            values,
            "dataset",
            f"the table file {arg!r} does not exist (paths are relative to the folder abkit runs in).",
        )
    raise _bad(values, "dataset", f"use 'synthetic', 'uci:<{'|'.join([*UCI_DOMAINS, 'all'])}>' or 'table:<path>'.")


def check_run_name(name: str) -> str:
    """Refuse run names that could escape the output folder or are awkward as folder names (``abkit.names``)."""
    if not is_name(name):
        raise ParameterError(
            f"run name {name!r} is not allowed: use 1-128 letters, digits, '.', '_' and '-', starting with a "
            "letter or digit (no '..', spaces, newlines or path separators), e.g. --run-name trial-1."
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
        low = (
            f"≥ {s.minimum:g}"
            if s.minimum is not None
            else (f"> {s.greater_than:g}" if s.greater_than is not None else "")
        )
        high = (
            f"≤ {s.maximum:g}" if s.maximum is not None else (f"< {s.less_than:g}" if s.less_than is not None else "")
        )
        return ", ".join(x for x in (low, high) if x) or "any"

    rows = [(s.name, s.type, json.dumps(s.default, ensure_ascii=False), allowed(s), s.help) for s in specs.values()]
    widths = [max([len(r[i]) for r in rows] + [len(h)]) for i, h in enumerate(("name", "type", "default", "allowed"))]
    lines = [f"{notebook}:" if notebook else ""] if notebook else []
    head = ("name", "type", "default", "allowed", "help")
    for r in [head, *rows]:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
    return "\n".join(lines)
