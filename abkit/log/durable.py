"""Durable file-system steps shared by the log's writers and its index: a directory entry survives a crash
only once its parent directory has been fsynced."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def ensure_dir(path: Path) -> None:
    """Create ``path`` and make each newly created level durable in its parent."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    path.mkdir(parents=True, exist_ok=True)
    for created in reversed(missing):
        fsync_dir(created.parent)


def fsync_file(path: Path) -> None:
    """Make the contents of file ``path`` durable."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())
