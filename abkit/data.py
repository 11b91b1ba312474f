"""Labelled text datasets: the UCI "Sentiment Labelled Sentences" loader, a generic CSV/Parquet loader,
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

import hashlib
import os
import shutil
import tempfile
import urllib.request
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

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


def load_table(path: str | Path, text_column: str = "text", label_column: str = "label") -> pd.DataFrame:
    """Load a CSV or Parquet file of labelled texts as text/label (strings) plus any ``domain`` column."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"table path {str(path)!r} does not exist; pass a .csv or .parquet file.")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    elif suffix in (".parquet", ".pq"):
        df = pd.read_parquet(path)
    else:
        raise DataError(f"table {path.name!r} has suffix {suffix!r}; use .csv or .parquet.")
    check_labelled(df, text_column, label_column)
    out = pd.DataFrame(
        {"text": df[text_column].astype(str).str.strip(), "label": df[label_column].astype(str)}
    )
    if "domain" in df.columns and "domain" not in (text_column, label_column):
        out["domain"] = df["domain"].astype(str)
    return out.reset_index(drop=True)


def load_dataset(spec: str, *, data_dir: str | Path | None = None) -> pd.DataFrame:
    """Load a real dataset named by a notebook parameter: ``"uci:<domain>"`` or ``"table:<path>"``.

    (The synthetic corpus lives in :mod:`abkit.synthetic`.)
    """
    kind, _, arg = spec.partition(":")
    if kind == "uci":
        return load_uci(arg or "all", data_dir)
    if kind == "table" and arg:
        return load_table(arg)
    raise DataError(f"dataset={spec!r} is not understood; use 'synthetic', 'uci:<domain>' or 'table:<path>'.")


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
) -> PreparedData:
    """Training data and a held-out traffic pool from a notebook's ``dataset`` parameter.

    ``"synthetic"``: ``n_train`` generated sentences of ``train_domains`` (no unseen vocabulary) and
    ``n_pool`` traffic sentences over every domain with ``new_vocab_rate`` paraphrases; both carry
    ``label_noise``. Real data (``"uci:<domain>"``, ``"table:<path>"``): de-duplicated, shuffled and
    split; the pool is the held-out ``test_fraction`` of ``train_domains`` plus every row of the other
    domains, and training keeps at most ``n_train`` rows.
    """
    from abkit import synthetic

    if int(n_train) != n_train or n_train < 2:
        raise DataError(f"n_train={n_train!r} must be an integer >= 2.")
    rng = np.random.default_rng(rng)
    if dataset == "synthetic":
        weights = {d: 1.0 for d in _domains(train_domains, list(synthetic.DOMAINS))}
        train = synthetic.make_corpus(n_train, rng=rng, domain_weights=weights, label_noise=label_noise)
        pool = synthetic.make_corpus(n_pool, rng=rng, new_vocab_rate=new_vocab_rate, label_noise=label_noise)
        return PreparedData(dataset, train, pool)
    df = load_dataset(dataset, data_dir=data_dir)
    if "domain" not in df.columns:
        df = df.assign(domain="all")
    chosen = _domains(train_domains, sorted(df["domain"].unique()))
    inside = df["domain"].isin(chosen)
    train, test = train_test_split(df[inside], test_fraction, rng)
    if n_train < len(train):
        train = train.iloc[:n_train].reset_index(drop=True)
    elif n_train > len(train):
        warnings.warn(f"n_train={n_train} but only {len(train)} training rows exist in {dataset!r}; using all.",
                      stacklevel=2)
    others = deduplicate(df[~inside])
    others = others[~others["text"].isin(train["text"])]
    return PreparedData(dataset, train, shuffle(pd.concat([test, others], ignore_index=True), rng))
