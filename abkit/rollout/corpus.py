"""Request texts for the lifecycle: labelled pools per traffic domain, split by text so that no model is
ever served a text it was fitted on.

Each pool holds distinct texts (the synthetic corpus is de-duplicated like UCI), drawn uniformly, so no
handful of frequent template sentences dominates a sample. Every domain's texts are split into disjoint
parts: ``train`` (the offline training set of the models trained before the run: the first champion, a
broken build) and traffic *generations*
0, 1, ...: requests are drawn from generation g after the g-th retrain on the log's labelled requests.
A model retrained on requests of generation g is therefore only ever served texts of generation g + 1,
which it never saw; models of the ``train`` part never see their training texts as traffic either.

Data: the offline synthetic corpus (``abkit.synthetic.make_corpus``, one call per domain: electronics,
restaurants, movies), or the UCI Sentiment Labelled Sentences (``abkit.data.load_uci``: amazon, yelp, imdb;
from ``ABKIT_DATA_DIR`` or ``../shared/data``), chosen by ``dataset``.

>>> import numpy as np
>>> c = TrafficCorpus.build("synthetic", ("electronics", "restaurants"), 2, np.random.default_rng(0), rows=400)
>>> texts, labels = c.draw(np.array(["electronics", "restaurants"]), 1, np.random.default_rng(1))
>>> len(texts), set(c.part("electronics", 0).text) & set(c.part("electronics", 1).text)
(2, set())
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from abkit.rollout.policy import RolloutError

__all__ = ["DATASETS", "TrafficCorpus"]

DATASETS = ("synthetic", "uci")
TRAIN = -1  # the part index of the offline training set


def _rows(
    dataset: str, domains: Sequence[str], rows: int, rng: np.random.Generator, data_dir: str | Path | None
) -> pd.DataFrame:
    if dataset == "synthetic":
        from abkit.synthetic import DOMAINS, make_corpus

        unknown = sorted(set(domains) - set(DOMAINS))
        if unknown:
            raise RolloutError(f"lifecycle domains {list(domains)} name {unknown}; the synthetic corpus has {DOMAINS}")
        frames = [make_corpus(rows, rng=rng, domain_weights={d: 1.0})[["text", "label", "domain"]] for d in domains]
        return pd.concat(frames, ignore_index=True).drop_duplicates("text").reset_index(drop=True)
    if dataset == "uci":
        from abkit.data import UCI_DOMAINS, load_uci

        unknown = sorted(set(domains) - set(UCI_DOMAINS))
        if unknown:
            raise RolloutError(f"lifecycle domains {list(domains)} name {unknown}; UCI has {list(UCI_DOMAINS)}")
        df = load_uci("all", data_dir)  # de-duplicated: each sentence once
        return df[df["domain"].isin(domains)].reset_index(drop=True)
    raise RolloutError(f"lifecycle dataset={dataset!r} is unknown; use one of {DATASETS}")


@dataclasses.dataclass(frozen=True)
class TrafficCorpus:
    """Rows (text, label, domain) per (domain, part); part ``TRAIN`` (-1) or a traffic generation 0, 1, ..."""

    dataset: str
    parts: Mapping[tuple[str, int], pd.DataFrame]

    @classmethod
    def build(
        cls,
        dataset: str,
        domains: Sequence[str],
        generations: int,
        rng: np.random.Generator,
        *,
        rows: int = 6000,
        train_share: float = 0.3,
        data_dir: str | Path | None = None,
    ) -> TrafficCorpus:
        """Split each domain's distinct texts at random: ``train_share`` to training, the rest evenly over
        ``generations`` traffic generations (``rows``: sentences generated per domain; UCI uses all it has)."""
        if generations < 1:
            raise RolloutError(f"generations={generations!r} must be >= 1 (traffic before any retrain)")
        df = _rows(dataset, domains, rows, rng, data_dir)
        parts: dict[tuple[str, int], pd.DataFrame] = {}
        probs = np.array([train_share] + [(1.0 - train_share) / generations] * generations)
        for d in domains:
            rows_d = df[df["domain"] == d]
            texts = rows_d["text"].unique()
            part_of = dict(zip(texts, rng.choice(np.arange(-1, generations), size=texts.size, p=probs), strict=True))
            which = rows_d["text"].map(part_of).to_numpy()
            for g in range(-1, generations):
                part = rows_d[which == g].reset_index(drop=True)
                if len(part) < 20:
                    raise RolloutError(
                        f"the {dataset} corpus has {len(part)} texts of {d!r} for part {g}; give more rows "
                        "(lifecycle corpus_rows) or fewer candidates"
                    )
                parts[(d, g)] = part
        return cls(dataset, parts)

    @property
    def generations(self) -> int:
        return max(g for _, g in self.parts) + 1

    def part(self, domain: str, generation: int) -> pd.DataFrame:
        """The rows of ``domain`` in ``generation`` (``TRAIN`` = -1: the offline training set)."""
        return self.parts[(domain, generation)]

    def draw(self, domain: np.ndarray, generation: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Texts and labels for requests of the given domains, drawn with replacement from ``generation``."""
        if generation >= self.generations:
            raise RolloutError(
                f"traffic generation {generation} does not exist: the corpus was split for "
                f"{self.generations - 1} retrain(s)"
            )
        texts = np.empty(domain.size, dtype=object)
        labels = np.empty(domain.size, dtype=object)
        for d in np.unique(domain):
            m = domain == d
            part = self.part(str(d), generation)
            pick = rng.integers(0, len(part), size=int(m.sum()))
            texts[m] = part["text"].to_numpy(dtype=object)[pick]
            labels[m] = part["label"].to_numpy(dtype=object)[pick]
        return texts, labels

    def domain_of(self, texts: Sequence[str]) -> np.ndarray:
        """The domain of each text (for describing training data in the registry)."""
        lookup = {t: d for (d, _), p in self.parts.items() for t in p["text"]}
        return np.array([lookup.get(t, "unknown") for t in texts], dtype=object)
