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
    hidden = disable or os.environ.get(ENV, "1") == "0"
    return tqdm(iterable, disable=hidden, **kwargs)


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
