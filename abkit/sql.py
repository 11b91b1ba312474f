"""SQL text shared by the engines and the log's readers."""

from __future__ import annotations

__all__ = ["sql_string"]


def sql_string(text: str) -> str:
    """``text`` as an SQL string literal (DuckDB and Spark)."""
    return "'" + text.replace("'", "''") + "'"
