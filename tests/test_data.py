"""abkit.data: UCI parity and traps, generic tables, dedup-safe splits, checksum-verified download."""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from abkit.data import (
    UCI_DOMAINS,
    DataError,
    add_label_noise,
    data_dir,
    download_uci,
    load_table,
    load_uci,
    read_uci_file,
    shuffle,
    train_test_split,
)


def _uci_root() -> Path:
    root = data_dir() / "sentiment_labelled_sentences"
    if not (root / UCI_DOMAINS["amazon"]).is_file():
        pytest.skip(f"real UCI data not found at {root}; set ABKIT_DATA_DIR to run the parity tests")
    return root


# Facts from ../shared/data/README.md (transcribed): 1,000 rows per file, 500/500 labels,
# exact duplicates Amazon 10, IMDb 3, Yelp 4, one sentence shared by Amazon and IMDb.
@pytest.mark.parametrize("domain, duplicates", [("amazon", 10), ("yelp", 4), ("imdb", 3)])
def test_uci_parity_with_the_dataset_facts(domain, duplicates):
    raw = read_uci_file(_uci_root() / UCI_DOMAINS[domain])
    assert len(raw) == 1000
    assert raw["label"].value_counts().to_dict() == {"negative": 500, "positive": 500}
    deduped = load_uci(domain)
    assert len(deduped) == 1000 - duplicates
    assert set(deduped["domain"]) == {domain} and deduped["text"].is_unique


def test_uci_all_drops_the_cross_domain_duplicate():
    _uci_root()
    assert len(load_uci("all")) == (1000 - 10) + (1000 - 4) + (1000 - 3) - 1


def test_imdb_traps_quotes_u0085_and_trailing_spaces():
    imdb = read_uci_file(_uci_root() / UCI_DOMAINS["imdb"])
    assert imdb["text"].str.count('"').mod(2).eq(1).sum() > 0  # unmatched quotes survived
    assert imdb["text"].str.contains("\u0085").any()  # U+0085 kept inside a sentence, not a line break
    assert not imdb["text"].str.endswith(" ").any()


def test_imdb_labels_come_in_runs_and_shuffle_breaks_them():
    imdb = load_uci("imdb", _uci_root().parent)
    runs = lambda s: int((s != s.shift()).sum())  # noqa: E731
    shuffled = shuffle(imdb, 7)
    assert runs(imdb["label"]) < 300 < runs(shuffled["label"])  # random order: ~500 runs
    assert shuffled.equals(shuffle(imdb, 7)) and not shuffled.equals(shuffle(imdb, 8))


def test_traps_on_a_hand_made_file(tmp_path):
    content = 'He said "wow  \t1\nBad\u0085worse.  \t0\n\nBad\u0085worse.  \t0\n'
    (tmp_path / UCI_DOMAINS["amazon"]).write_bytes(content.encode())
    raw = read_uci_file(tmp_path / UCI_DOMAINS["amazon"])
    assert raw["text"].tolist() == ['He said "wow', "Bad\u0085worse.", "Bad\u0085worse."]
    assert raw["label"].tolist() == ["positive", "negative", "negative"]
    assert len(load_uci("amazon", tmp_path)) == 2


def test_uci_errors(tmp_path):
    with pytest.raises(DataError, match="domain='twitter'"):
        load_uci("twitter", tmp_path)
    with pytest.raises(DataError, match="ABKIT_DATA_DIR"):
        load_uci("amazon", tmp_path)
    (tmp_path / UCI_DOMAINS["amazon"]).write_text("no label here\n")
    with pytest.raises(DataError, match="line 1"):
        load_uci("amazon", tmp_path)


def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ABKIT_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path.resolve()
    monkeypatch.delenv("ABKIT_DATA_DIR")
    assert data_dir() == (Path(__file__).resolve().parents[2] / "shared" / "data").resolve()


def test_split_is_dedup_safe_and_stratified():
    df = pd.DataFrame({"text": [f"t{i % 80}" for i in range(100)], "label": ["a", "b"] * 50})
    train, test = train_test_split(df, 0.25, np.random.default_rng(0))
    assert not set(train["text"]) & set(test["text"])
    assert len(train) + len(test) == 80
    assert test["label"].value_counts().to_dict() == {"a": 10, "b": 10}
    again = train_test_split(df, 0.25, 0)
    assert train.equals(again[0]) and test.equals(again[1])
    with pytest.raises(DataError, match="test_fraction=1.5"):
        train_test_split(df, 1.5, 0)


def test_label_noise_flips_the_requested_fraction():
    df = pd.DataFrame({"text": [str(i) for i in range(4000)], "label": ["ham", "spam", "eggs", "ham"] * 1000})
    noisy = add_label_noise(df, 0.2, np.random.default_rng(1))
    flipped = (noisy["label"] != df["label"]).mean()
    assert abs(flipped - 0.2) < 3 * np.sqrt(0.2 * 0.8 / 4000)
    assert set(noisy["label"]) == {"ham", "spam", "eggs"}
    assert add_label_noise(df, 0.0, 1).equals(df)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_load_table_any_label_strings(tmp_path, suffix):
    df = pd.DataFrame({"msg": [" hi ", "win cash", "lunch?"], "kind": ["ham", "spam", "ham"], "domain": "sms"})
    path = tmp_path / f"t{suffix}"
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_parquet(path)
    out = load_table(path, text_column="msg", label_column="kind")
    assert out.to_dict("list") == {
        "text": ["hi", "win cash", "lunch?"],
        "label": ["ham", "spam", "ham"],
        "domain": ["sms"] * 3,
    }


@pytest.mark.parametrize(
    "frame, match",
    [
        (
            pd.DataFrame({"text": ["a", "b"], "y": ["0", "1"]}),
            r"label_column='label' names no column of 't.csv', which has \['text', 'y'\]",
        ),
        (pd.DataFrame({"text": ["a", "b"], "label": ["x", "x"]}), "single class"),
        (pd.DataFrame({"text": ["a", "  "], "label": ["x", "y"]}), "1 empty text"),
    ],
)
def test_load_table_errors(tmp_path, frame, match):
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=match):
        load_table(path)


def test_load_table_bad_paths(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_table(tmp_path / "nope.csv")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"suffix '.xlsx', which names no format.*table_format"):
        load_table(tmp_path / "t.xlsx")


# ---------------------------------------------------------------- download against a local server
def _fixture_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name in UCI_DOMAINS.values():
            zf.writestr(f"sentiment labelled sentences/{name}", "Good.\t1\nBad.\t0\n")
        zf.writestr("__MACOSX/sentiment labelled sentences/._amazon_cells_labelled.txt", "junk")
    return buf.getvalue()


@pytest.fixture
def server(tmp_path):
    """Serve tmp_path/www on 127.0.0.1; yields (base url, list of requested paths)."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "uci.zip").write_bytes(_fixture_zip())
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            hits.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_caches_and_loads(server, tmp_path):
    base, hits = server
    digest = hashlib.sha256(_fixture_zip()).hexdigest()
    folder = download_uci(tmp_path / "cache", url=f"{base}/uci.zip", sha256=digest)
    assert load_uci("yelp", folder)["label"].tolist() == ["positive", "negative"]
    assert not (tmp_path / "cache" / "__MACOSX").exists()
    download_uci(tmp_path / "cache", url=f"{base}/uci.zip", sha256=digest)
    assert len(hits) == 1  # second call served from the verified cache


def test_download_refuses_a_wrong_checksum(server, tmp_path):
    base, _ = server
    with pytest.raises(DataError, match="expected 00000"):
        download_uci(tmp_path / "c", url=f"{base}/uci.zip", sha256="0" * 64)
    assert not (tmp_path / "c" / "uci.zip").exists()


def test_download_checks_the_published_digest_by_default(server, tmp_path):
    base, _ = server  # the fixture archive is not the real one, so the pinned digest refuses it
    with pytest.raises(DataError, match="expected afc26626d710"):
        download_uci(tmp_path / "c", url=f"{base}/uci.zip")


def test_download_without_pin_records_the_digest(server, tmp_path):
    base, hits = server
    with pytest.warns(UserWarning, match="without a pinned checksum"):
        download_uci(tmp_path / "c", url=f"{base}/uci.zip", sha256=None)
    pinned = (tmp_path / "c" / "uci.zip.sha256").read_text().split()[0]
    assert pinned == hashlib.sha256(_fixture_zip()).hexdigest()
    download_uci(tmp_path / "c", url=f"{base}/uci.zip", sha256=None)
    assert len(hits) == 1


def test_download_reports_network_failure(server, tmp_path):
    base, _ = server
    with pytest.raises(DataError, match="download of .* failed"):
        download_uci(tmp_path / "c", url=f"{base}/missing.zip", sha256="0" * 64)


def test_prepare_synthetic_keeps_unseen_words_out_of_training():
    from abkit.data import prepare_dataset

    data = prepare_dataset("synthetic", n_train=300, n_pool=400, rng=0, train_domains="movies", new_vocab_rate=0.5)
    assert set(data.train["domain"]) == {"movies"} and len(data.train) == 300
    assert "paraphrase" not in set(data.train["phenomenon"])
    assert abs((data.pool["phenomenon"] == "paraphrase").mean() - 0.5) < 0.1
    with pytest.raises(DataError, match=r"names \['cars'\]"):
        prepare_dataset("synthetic", n_train=10, rng=0, train_domains="cars")


def test_prepare_uci_domain_shift_pool_is_disjoint(tmp_path):
    from abkit.data import load_pool, prepare_dataset

    _uci_root()
    data = prepare_dataset("uci:all", n_train=500, rng=0, train_domains="amazon", test_fraction=0.3)
    assert len(data.train) == 500 and set(data.train["domain"]) == {"amazon"}
    assert not set(data.train["text"]) & set(data.pool["text"])
    assert data.pool["domain"].value_counts()["yelp"] == 996
    data.save_pool(tmp_path)
    assert load_pool(tmp_path).equals(data.pool)
    with pytest.raises(DataError, match="run notebooks/00_setup"):
        load_pool(tmp_path / "other")
