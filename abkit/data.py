"""Labelled text datasets: the UCI "Sentiment Labelled Sentences" loader, a loader for your own table
(CSV, TSV, JSON Lines or Parquet; columns by name or position, with or without a header row),
dedup-safe splitting and the download of the public UCI archive.

Every loader returns a :class:`pandas.DataFrame` with the columns ``text`` and ``label`` (strings) and,
where known, ``domain``. UCI labels ``0``/``1`` become ``"negative"``/``"positive"`` so that reports
read naturally and nothing downstream assumes numeric or balanced labels (the synthetic corpus uses
the same two strings).

>>> import numpy as np
>>> df = pd.DataFrame({"text": ["a", "b", "a", "c"], "label": ["x", "y", "x", "y"]})
>>> train, test = train_test_split(df, 0.34, np.random.default_rng(0))
>>> len(train) + len(test), sorted(set(train.text) & set(test.text))
(3, [])
"""

from __future__ import annotations

import difflib
import hashlib
import os
import shutil
import tempfile
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from abkit.errors import AbkitError

UCI_DOMAINS: dict[str, str] = {
    "amazon": "amazon_cells_labelled.txt",
    "yelp": "yelp_labelled.txt",
    "imdb": "imdb_labelled.txt",
}
"""UCI domain name -> file name inside the archive."""

UCI_LABELS: dict[str, str] = {"0": "negative", "1": "positive"}
"""UCI label codes -> the label strings abkit uses."""

UCI_URL = "https://archive.ics.uci.edu/static/public/331/sentiment+labelled+sentences.zip"
"""Public download address of UCI dataset 331 (doi:10.24432/C57604, CC BY 4.0)."""

UCI_SHA256 = "afc26626d710899948693e1a61405dce197f57ffa719fa1130d346b4cc095343"
"""SHA-256 of the archive at ``UCI_URL`` (an ~82 KB zip): the digest other projects pin for the same file."""

SYNTHETIC_N_TRAIN = 2000
"""Training texts generated for the synthetic corpus when ``n_train`` is 0 (it has no "every row")."""

_UCI_SUBDIRS = ("sentiment_labelled_sentences", "sentiment labelled sentences", ".")


class DataError(AbkitError):
    """A dataset is missing, malformed or unusable for training."""


def data_dir() -> Path:
    """The folder that holds real datasets: ``$ABKIT_DATA_DIR``, else ``<repo>/../shared/data``."""
    env = os.environ.get("ABKIT_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    return (Path(__file__).resolve().parent.parent.parent / "shared" / "data").resolve()


_default_data_dir = data_dir


def _uci_folder(root: Path) -> Path:
    for sub in _UCI_SUBDIRS:
        if (root / sub / UCI_DOMAINS["amazon"]).is_file():
            return (root / sub).resolve()
    raise DataError(
        f"data_dir {str(root)!r} holds no UCI 'Sentiment Labelled Sentences' files "
        f"(looked for {UCI_DOMAINS['amazon']!r} in {', '.join(repr(s) for s in _UCI_SUBDIRS)}); "
        "set ABKIT_DATA_DIR to the folder that holds them or fetch them with abkit.data.download_uci()."
    )


def read_uci_file(path: str | Path) -> pd.DataFrame:
    """Parse one UCI file exactly, without de-duplication.

    Handles the format traps: lines are split on ``"\\n"`` only (IMDb holds U+0085, which
    ``str.splitlines`` treats as a break), each line on its *last* tab (no CSV quoting: IMDb has
    unmatched ``"``), and trailing spaces before the tab are stripped (every IMDb sentence has two).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"UCI file {str(path)!r} does not exist; check data_dir or ABKIT_DATA_DIR.")
    content = path.read_bytes().decode("utf-8")
    texts: list[str] = []
    labels: list[str] = []
    for lineno, line in enumerate(content.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        text, tab, code = line.rpartition("\t")
        if not tab or code.strip() not in UCI_LABELS:
            raise DataError(
                f"{path.name} line {lineno}: expected 'sentence<TAB>0|1', got {line[-40:]!r}; "
                "is this a UCI Sentiment Labelled Sentences file?"
            )
        texts.append(text.rstrip())
        labels.append(UCI_LABELS[code.strip()])
    return pd.DataFrame({"text": texts, "label": labels})


def load_uci(domain: str = "all", data_dir: str | Path | None = None, *, dedup: bool = True) -> pd.DataFrame:
    """Load UCI sentences of ``domain`` ("amazon", "yelp", "imdb" or "all") as text/label/domain.

    ``dedup`` drops exact duplicate sentences (keeping the first; with "all" also across domains)
    and sentences whose copies disagree on the label, so no sentence can land in both a train and
    a test split. Rows keep file order: shuffle with :func:`shuffle` (IMDb labels come in runs).
    """
    names = list(UCI_DOMAINS) if domain == "all" else [domain]
    unknown = [d for d in names if d not in UCI_DOMAINS]
    if unknown:
        raise DataError(f"domain={domain!r} is not a UCI domain; use one of {[*UCI_DOMAINS, 'all']}.")
    folder = _uci_folder(Path(data_dir) if data_dir is not None else _default_data_dir())
    frames = [read_uci_file(folder / UCI_DOMAINS[d]).assign(domain=d) for d in names]
    df = pd.concat(frames, ignore_index=True)
    return deduplicate(df) if dedup else df


def deduplicate(df: pd.DataFrame) -> pd.DataFrame:
    """Drop exact duplicate texts (first copy kept); texts whose copies disagree on the label are dropped."""
    conflicting = df.groupby("text")["label"].nunique()
    bad = set(conflicting[conflicting > 1].index)
    out = df[~df["text"].isin(bad)].drop_duplicates("text", keep="first")
    return out.reset_index(drop=True)


def shuffle(df: pd.DataFrame, rng: np.random.Generator | int) -> pd.DataFrame:
    """Rows of ``df`` in a seeded random order (index reset)."""
    rng = np.random.default_rng(rng)
    return df.iloc[rng.permutation(len(df))].reset_index(drop=True)


def train_test_split(
    df: pd.DataFrame, test_fraction: float, rng: np.random.Generator | int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split into (train, test), stratified by label, after de-duplicating texts (no leakage).

    Each label keeps ``round(test_fraction * n_label)`` rows in test (at least one where it has two).
    """
    if not 0.0 < test_fraction < 1.0:
        raise DataError(f"test_fraction={test_fraction!r} must lie strictly between 0 and 1, e.g. 0.25.")
    check_labelled(df)
    rng = np.random.default_rng(rng)
    unique = shuffle(deduplicate(df), rng)
    test_mask = np.zeros(len(unique), dtype=bool)
    for _, idx in sorted(unique.groupby("label").indices.items()):
        n_test = int(round(test_fraction * len(idx)))
        if len(idx) >= 2:
            n_test = min(max(n_test, 1), len(idx) - 1)
        test_mask[idx[:n_test]] = True
    return unique[~test_mask].reset_index(drop=True), unique[test_mask].reset_index(drop=True)


def add_label_noise(df: pd.DataFrame, rate: float, rng: np.random.Generator | int) -> pd.DataFrame:
    """Copy of ``df`` whose labels are replaced, with probability ``rate``, by a different label."""
    if not 0.0 <= rate <= 1.0:
        raise DataError(f"label noise rate={rate!r} must lie in [0, 1], e.g. 0.1.")
    rng = np.random.default_rng(rng)
    labels = np.asarray(sorted(df["label"].unique()), dtype=object)
    out = df.copy()
    flip = rng.random(len(df)) < rate
    if len(labels) < 2 or not flip.any():
        return out
    current = np.searchsorted(labels, out.loc[flip, "label"].to_numpy(dtype=object))
    shift = rng.integers(1, len(labels), size=int(flip.sum()))
    out.loc[flip, "label"] = labels[(current + shift) % len(labels)]
    return out


def check_labelled(df: pd.DataFrame, text_column: str = "text", label_column: str = "label") -> None:
    """Raise :class:`DataError` unless ``df`` has non-empty texts and at least two label values."""
    missing = [c for c in (text_column, label_column) if c not in df.columns]
    if missing:
        raise DataError(
            f"missing column(s) {missing}; the table has {list(df.columns)}. "
            "Name the right ones with text_column= / label_column=."
        )
    texts = df[text_column]
    empty = texts.isna() | (texts.astype(str).str.strip() == "")
    if empty.any():
        rows = list(np.flatnonzero(empty.to_numpy())[:5])
        raise DataError(
            f"column {text_column!r} has {int(empty.sum())} empty text(s) (rows {rows}...); "
            "drop or fill them before training."
        )
    if df[label_column].isna().any():
        raise DataError(f"column {label_column!r} has missing labels; drop those rows first.")
    classes = df[label_column].astype(str).unique()
    if len(classes) < 2:
        raise DataError(
            f"column {label_column!r} holds a single class {list(classes)}; a classifier needs at "
            "least two label values — check the label column or the filtering."
        )


TABLE_FORMATS = ("auto", "csv", "tsv", "jsonl", "parquet")
"""Formats :func:`load_table` reads; ``auto`` chooses by the file's suffix."""

_SUFFIX_FORMAT = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


@dataclass(frozen=True)
class TableSpec:
    """How to read a user's table: which columns hold the text and the label (a name, or a 0-based
    position written as digits), whether the first row is a header, the format and the text encoding."""

    text_column: str | int = "text"
    label_column: str | int = "label"
    header: bool = True
    format: str = "auto"
    encoding: str = "utf-8"

    def __post_init__(self) -> None:
        if self.format not in TABLE_FORMATS:
            raise DataError(f"table_format={self.format!r} is unknown; use one of {list(TABLE_FORMATS)}.")
        try:
            "".encode(self.encoding)
        except LookupError:
            raise DataError(
                f"table_encoding={self.encoding!r} is not a known text encoding; try 'utf-8', 'latin-1' or 'cp1252'."
            ) from None
        for name in ("text_column", "label_column"):
            col = getattr(self, name)
            if isinstance(col, str) and col.strip().isdigit():
                object.__setattr__(self, name, int(col))
            elif isinstance(col, str) and not col.strip():
                raise DataError(f"{name}='' names no column; give a column name or a 0-based position such as 0.")
        if not self.header and not all(isinstance(c, int) for c in (self.text_column, self.label_column)):
            raise DataError(
                f"table_header=false but text_column={self.text_column!r}, label_column={self.label_column!r}: "
                "a file without a header row has no column names; give 0-based positions, e.g. "
                "label_column=0 text_column=1."
            )


def table_format(path: Path, spec: TableSpec) -> str:
    """The format to read ``path`` with: ``spec.format``, else the one its suffix names."""
    if spec.format != "auto":
        return spec.format
    fmt = _SUFFIX_FORMAT.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"table {path.name!r} has suffix {path.suffix or '(none)'!r}, which names no format; rename it to "
            f"one of {sorted(_SUFFIX_FORMAT)} or set table_format to one of {list(TABLE_FORMATS[1:])}."
        )
    return fmt


def _decode(path: Path, encoding: str) -> str:
    """The file's text; an undecodable byte is reported with its line and the option that fixes it."""
    raw = path.read_bytes()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{str(path)!r} line {line}: byte {raw[exc.start : exc.start + 1]!r} is not valid {encoding}; "
            "the file has another encoding. Set table_encoding (e.g. -p table_encoding=latin-1 or cp1252), "
            "or re-save the file as UTF-8."
        ) from exc


def _read_frame(path: Path, fmt: str, spec: TableSpec) -> pd.DataFrame:
    import io

    if fmt == "parquet":
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a broken file
            raise DataError(f"{str(path)!r} is not a readable Parquet file ({exc}); check table_format.") from exc
    text = _decode(path, spec.encoding)
    if not text.strip():
        raise DataError(f"table {str(path)!r} is empty; it needs a row per labelled text.")
    if fmt == "jsonl":
        try:
            return pd.read_json(io.StringIO(text), lines=True, dtype=False)
        except ValueError as exc:
            raise DataError(f"{str(path)!r} is not JSON Lines (one JSON object per line): {exc}.") from exc
    import csv

    options: dict[str, Any] = {"sep": "\t", "quoting": csv.QUOTE_NONE} if fmt == "tsv" else {}
    try:
        return pd.read_csv(
            io.StringIO(text),
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            header=0 if spec.header else None,
            **options,
        )
    except pd.errors.ParserError as exc:
        raise DataError(
            f"{str(path)!r} cannot be read as {fmt.upper()}: {exc}; check table_format and table_header."
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(f"table {str(path)!r} has no rows.") from exc


def _column(df: pd.DataFrame, col: str | int, option: str, path: Path) -> Any:
    if isinstance(col, int):
        if not 0 <= col < df.shape[1]:
            raise DataError(
                f"{option}={col} but {path.name!r} has {df.shape[1]} column(s) (positions 0 to "
                f"{df.shape[1] - 1}); give a 0-based position or a column name."
            )
        return df.columns[col]
    if col not in df.columns:
        close = difflib.get_close_matches(str(col), [str(c) for c in df.columns], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(
            f"{option}={col!r} names no column of {path.name!r}, which has {list(df.columns)}.{hint} "
            "Give a column name, or a 0-based position (and table_header=false for a file without "
            "a header row)."
        )
    return col


def load_table(
    path: str | Path,
    text_column: str | int = "text",
    label_column: str | int = "label",
    *,
    spec: TableSpec | None = None,
) -> pd.DataFrame:
    """Load a CSV, TSV, JSON Lines or Parquet file of labelled texts as text/label (strings) plus any
    ``domain`` column. ``spec`` (a :class:`TableSpec`) wins over the two column arguments.

    Tab-separated files are read without quoting: a ``"`` inside a text stays a literal character.
    """
    path = Path(path)
    spec = spec or TableSpec(text_column, label_column)
    if not path.is_file():
        raise DataError(
            f"table path {str(path)!r} does not exist; give the path of a .csv, .tsv, .jsonl or "
            ".parquet file (relative to the project folder)."
        )
    df = _read_frame(path, table_format(path, spec), spec)
    if len(df) == 0:
        raise DataError(f"table {str(path)!r} has a header but no rows; it needs a row per labelled text.")
    text_col = _column(df, spec.text_column, "text_column", path)
    label_col = _column(df, spec.label_column, "label_column", path)
    if text_col == label_col:
        raise DataError(f"text_column and label_column both name column {text_col!r}; they must differ.")
    check_labelled(df, text_col, label_col)
    out = pd.DataFrame({"text": df[text_col].astype(str).str.strip(), "label": df[label_col].astype(str).str.strip()})
    if "domain" in df.columns and "domain" not in (text_col, label_col):
        out["domain"] = df["domain"].astype(str)
    return out.reset_index(drop=True)


def load_dataset(spec: str, *, data_dir: str | Path | None = None, table: TableSpec | None = None) -> pd.DataFrame:
    """Load a real dataset named by a notebook parameter: ``"uci:<domain>"`` or ``"table:<path>"``
    (read as ``table`` says). (The synthetic corpus lives in :mod:`abkit.synthetic`.)
    """
    kind, _, arg = spec.partition(":")
    if kind == "uci":
        return load_uci(arg or "all", data_dir)
    if kind == "table" and arg:
        return load_table(arg, spec=table)
    raise DataError(f"dataset={spec!r} is not understood; use 'synthetic', 'uci:<domain>' or 'table:<path>'.")


def check_positive_label(labels: Any, positive_label: str) -> str:
    """``positive_label`` if it is one of ``labels`` ("" passes: no positive class), else a clear error."""
    found = sorted({str(x) for x in labels})
    if positive_label and positive_label not in found:
        raise DataError(f"positive_label={positive_label!r} is not a label of the data; its labels are {found}.")
    return positive_label


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_uci(
    dest_dir: str | Path, *, sha256: str | None = UCI_SHA256, url: str = UCI_URL, timeout: float = 60.0
) -> Path:
    """Download (once) and unpack the UCI archive into ``dest_dir``; return the folder of the .txt files.

    ``sha256`` is the expected hex digest (the pinned ``UCI_SHA256`` by default): a mismatching download
    is deleted and refused. Passing ``None`` explicitly trusts the first download: its digest is written to
    ``<dest_dir>/<archive>.sha256`` (pin that value afterwards) and later calls check against it.
    A cached archive that verifies is not downloaded again. The result is a valid ``data_dir`` for
    :func:`load_uci`.
    """
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / (Path(urllib.request.url2pathname(url.rsplit("/", 1)[-1])).name or "uci.zip")
    pin_file = archive.with_name(archive.name + ".sha256")
    expected = sha256.lower() if sha256 else None
    if expected is None and pin_file.is_file():
        expected = pin_file.read_text().split()[0]
    if not (archive.is_file() and expected and sha256_file(archive) == expected):
        _fetch(url, archive, timeout)
        actual = sha256_file(archive)
        if expected is None:
            pin_file.write_text(f"{actual}  {archive.name}\n")
            warnings.warn(
                f"{archive.name} downloaded without a pinned checksum; its sha256 is {actual} "
                f"(recorded in {pin_file.name}). Pass sha256={actual!r} to pin it.",
                stacklevel=2,
            )
        elif actual != expected:
            archive.unlink()
            raise DataError(
                f"sha256 of {url} is {actual}, expected {expected}; the download was deleted. "
                "Check the URL or the pinned digest."
            )
    with zipfile.ZipFile(archive) as zf:
        members = [m for m in zf.namelist() if not m.startswith("__MACOSX") and m.endswith(".txt")]
        zf.extractall(dest, members=members)
    return _uci_folder(dest) if any(m.endswith(UCI_DOMAINS["amazon"]) for m in members) else dest


def _fetch(url: str, target: Path, timeout: float) -> None:
    """Stream ``url`` into ``target`` atomically (temp file, then rename)."""
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".download-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            shutil.copyfileobj(resp, out)
        os.replace(tmp, target)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise DataError(f"download of {url} failed ({exc}); check the network or pass another url=.") from exc


@dataclass(frozen=True)
class PreparedData:
    """Training rows and a disjoint held-out pool (evaluation and simulated traffic), both text/label/domain."""

    dataset: str
    train: pd.DataFrame
    pool: pd.DataFrame

    def counts(self) -> pd.DataFrame:
        """Rows per part, domain and label (a table for the notebook)."""
        parts = pd.concat([self.train.assign(part="train"), self.pool.assign(part="pool")])
        return parts.groupby(["part", "domain", "label"]).size().unstack("label", fill_value=0)

    def save_pool(self, run_dir: str | Path) -> Path:
        """Write the pool to ``<run_dir>/data/traffic.parquet`` (read back by :func:`load_pool`)."""
        path = Path(run_dir) / "data" / "traffic.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        self.pool.to_parquet(path, index=False)
        return path


def load_pool(run_dir: str | Path) -> pd.DataFrame:
    """The traffic pool that ``00_setup`` saved under ``run_dir``."""
    path = Path(run_dir) / "data" / "traffic.parquet"
    if not path.is_file():
        raise DataError(f"no traffic pool at {str(path)!r}; run notebooks/00_setup.ipynb with this run_dir first.")
    return pd.read_parquet(path)


def _domains(spec: str, available: list[str]) -> list[str]:
    chosen = [d.strip() for d in spec.split(",") if d.strip()] or available
    unknown = sorted(set(chosen) - set(available))
    if unknown:
        raise DataError(f"train_domains={spec!r} names {unknown}, which the data lacks; use some of {available}.")
    return chosen


def prepare_dataset(
    dataset: str,
    *,
    n_train: int,
    rng: np.random.Generator | int,
    train_domains: str = "",
    test_fraction: float = 0.3,
    n_pool: int = 3000,
    new_vocab_rate: float = 0.1,
    label_noise: float = 0.05,
    data_dir: str | Path | None = None,
    table: TableSpec | None = None,
) -> PreparedData:
    """Training data and a held-out traffic pool from a notebook's ``dataset`` parameter.

    ``"synthetic"``: ``n_train`` (0 means :data:`SYNTHETIC_N_TRAIN`) generated sentences of ``train_domains``
    (no unseen vocabulary) and
    ``n_pool`` traffic sentences over every domain with ``new_vocab_rate`` paraphrases; both carry
    ``label_noise``. Real data (``"uci:<domain>"``, ``"table:<path>"``): de-duplicated, shuffled and
    split; the pool is the held-out ``test_fraction`` of ``train_domains`` plus every row of the other
    domains, and training keeps every training row, or at most ``n_train`` when it is > 0 (a cap).
    ``table`` says how to read a ``table:`` file (columns, header, format, encoding).
    """
    from abkit import synthetic

    if int(n_train) != n_train or n_train < 0 or n_train == 1:
        raise DataError(f"n_train={n_train!r} must be 0 (every row) or an integer >= 2.")
    rng = np.random.default_rng(rng)
    if dataset == "synthetic":
        n_train = n_train or SYNTHETIC_N_TRAIN
        weights = {d: 1.0 for d in _domains(train_domains, list(synthetic.DOMAINS))}
        train = synthetic.make_corpus(n_train, rng=rng, domain_weights=weights, label_noise=label_noise)
        pool = synthetic.make_corpus(n_pool, rng=rng, new_vocab_rate=new_vocab_rate, label_noise=label_noise)
        return PreparedData(dataset, train, pool)
    df = load_dataset(dataset, data_dir=data_dir, table=table)
    if "domain" not in df.columns:
        df = df.assign(domain="all")
    chosen = _domains(train_domains, sorted(df["domain"].unique()))
    inside = df["domain"].isin(chosen)
    train, test = train_test_split(df[inside], test_fraction, rng)
    if 0 < n_train < len(train):
        train = train.iloc[:n_train].reset_index(drop=True)
    elif n_train > len(train):
        warnings.warn(
            f"n_train={n_train} but only {len(train)} training rows exist in {dataset!r}; using all.", stacklevel=2
        )
    others = deduplicate(df[~inside])
    others = others[~others["text"].isin(train["text"])]
    return PreparedData(dataset, train, shuffle(pd.concat([test, others], ignore_index=True), rng))
