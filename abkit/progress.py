"""Progress bars for long work that stay out of rendered reports."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from tqdm import tqdm

#: Set to "0" to hide abkit's progress bars (``abkit run`` does so for the kernels it starts).
ENV = "ABKIT_PROGRESS"
T = TypeVar("T")


def progress_bar(iterable: Iterable[T], *, disable: bool = False, **kwargs: Any) -> Iterable[T]:
    """A text progress bar over ``iterable``, hidden when ``disable`` or ``$ABKIT_PROGRESS`` is ``"0"``.

    >>> import os
    >>> with progress_hidden():
    ...     list(progress_bar(range(3), desc="quiet"))
    [0, 1, 2]
    """
    return tqdm(iterable, disable=_hidden(disable), **kwargs)


def _hidden(disable: bool) -> bool:
    return disable or os.environ.get(ENV, "1") == "0"


class Stages:
    """A progress bar over named stages of several items (``total`` stages in all): ``stage(item, name)``
    starts one (the previous one is then done), ``skip(n)`` counts stages an item did not need; hidden as
    ``progress_bar`` is.

    >>> with progress_hidden(), Stages(4, desc="demo") as bar:
    ...     bar.stage("a", "read"); bar.stage("a", "write"); bar.skip(2)
    """

    def __init__(self, total: int, *, desc: str, disable: bool = False) -> None:
        self._bar = tqdm(total=total, desc=desc, unit="stage", disable=_hidden(disable))
        self._open = False

    def stage(self, item: str, name: str) -> None:
        """Start stage ``name`` of ``item``; the stage before it is done."""
        self._close_stage()
        self._bar.set_postfix_str(f"{item}: {name}")
        self._open = True

    def skip(self, n: int) -> None:
        """The stage under way is done, and ``n`` more were not needed."""
        self._close_stage()
        self._bar.update(n)

    def _close_stage(self) -> None:
        if self._open:
            self._bar.update(1)
            self._open = False

    def __enter__(self) -> Stages:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self._close_stage()
        self._bar.close()


@contextmanager
def progress_hidden() -> Iterator[None]:
    """Hide abkit's progress bars in this process and in the kernels it starts, then restore."""
    before = os.environ.get(ENV)
    os.environ[ENV] = "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
