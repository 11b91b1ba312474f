"""One rule for the names that become folder names: experiment keys, variant names and run names.

A name is 1-128 letters, digits, ``.``, ``_`` or ``-``, starts with a letter or a digit and holds no ``..``,
so it can never climb out of a folder, hold a path separator, start a hidden file, or end in a newline (the
whole string must match).

>>> check_name("sentiment-v2", "experiment key")
'sentiment-v2'
>>> check_name("smoke\\n", "experiment key")
Traceback (most recent call last):
...
abkit.names.NameRuleError: experiment key 'smoke\\n' is not allowed: ...
"""

from __future__ import annotations

import re
from typing import Any

from abkit.errors import AbkitError

__all__ = ["NAME_PATTERN", "NameRuleError", "check_name", "is_name"]

#: The unanchored pattern (``is_name`` also refuses ``..``); RE2 engines anchor it as ``^...$`` (whole text).
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"
_NAME = re.compile(NAME_PATTERN)


class NameRuleError(AbkitError):
    """A key, variant name or run name breaks the name rule; the message names the field and the fix."""


def is_name(value: Any) -> bool:
    """Whether ``value`` is a string that follows the name rule, as a whole."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None and ".." not in value


def check_name(value: Any, field: str, example: str = "trial-1") -> str:
    """Return ``value`` if it follows the name rule, else raise ``NameRuleError`` naming ``field``."""
    if not is_name(value):
        raise NameRuleError(
            f"{field} {value!r} is not allowed: use 1-128 letters, digits, '.', '_' or '-', starting with a "
            f"letter or digit (no '..', spaces, newlines or path separators; it names a folder), e.g. {example!r}."
        )
    return value
