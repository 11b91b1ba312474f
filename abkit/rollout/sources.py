"""Where the lifecycle's model versions come from and how they answer requests.

Two sources share one interface (``add`` a version, ``draw`` request texts, ``predict``, ``reference``,
``latency``):

- ``ClassifierSource`` (versions described by a ``Recipe``): real TF-IDF + logistic-regression classifiers
  (``abkit.models.train_model``) run on request texts drawn from a ``TrafficCorpus``. A recipe trains on
  the corpus' offline training set of the first domain (``data="training"``), or, for a retrain, on the
  labelled requests the prediction log holds from its last ``recent_days`` days (``data="log"``: read back
  from the log's predictions and labels). The training rows are split by text: a ``validation_share`` is
  held out, and the version's predictions on those requests are its drift reference (accuracy and
  confidences). After a retrain on the log, traffic is drawn from the corpus' next generation, texts the
  new model never saw. Predictions are cached per distinct text. A serving fault can be scheduled: from
  ``broken_from_day`` the version's serving percent-encodes every request before the model sees it (a faulty
  preprocessing release; the model itself is unchanged), so most words become unknown to the vectorizer.
- ``SimulatedSource`` (``ModelBehaviour``): simulated behaviours (accuracy per domain, latency, an optional
  silent regression); request texts are the domain names. Many seeded lifecycles run in seconds this way (the
  policy's error-rate tests and ``benchmarks/bench_rollout.py``).

Latency is simulated in both: lognormal around the version's ``latency_ms``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import urllib.parse
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from abkit.rollout.corpus import TRAIN, TrafficCorpus
from abkit.rollout.policy import RolloutError
from abkit.synthetic import LABELS

__all__ = ["ClassifierSource", "ModelBehaviour", "Recipe", "SimulatedSource", "make_source"]


@dataclasses.dataclass(frozen=True)
class ModelBehaviour:
    """A simulated model version: accuracy per domain, median latency, optional silent regression."""

    version: str
    accuracy: Mapping[str, float]  # per traffic domain
    latency_ms: float = 20.0
    regression_day: float | None = None  # from this (absolute) day on, accuracy drops by ``regression_drop``
    regression_drop: float = 0.0
    trained_on: str = ""

    def accuracy_at(self, domain: np.ndarray, day: float) -> np.ndarray:
        acc = np.array([self.accuracy.get(d, min(self.accuracy.values())) for d in domain], dtype=np.float64)
        if self.regression_day is not None and day >= self.regression_day:
            acc = acc - self.regression_drop
        return np.clip(acc, 0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How a real classifier version (TF-IDF + logistic regression) is trained and served."""

    version: str
    data: str = "training"  # "training": the corpus' offline set of the first domain; "log": recent labelled requests
    recent_days: int = 3  # data="log": the labelled requests of this many last days
    max_rows: int = 0  # distinct training texts kept at random (0: all); a tiny set makes a weak model
    label_noise: float = 0.0  # share of training labels flipped (a labelling fault); validation labels stay true
    validation_share: float = 0.2  # share of the distinct texts held out as the drift reference
    latency_ms: float = 20.0
    broken_from_day: float | None = None  # from this (absolute) day the serving percent-encodes requests
    trained_on: str = ""  # how the run describes it, e.g. "a broken training job"

    def __post_init__(self) -> None:
        if self.data not in ("training", "log"):
            raise RolloutError(f"recipe {self.version!r}: data={self.data!r}; use 'training' or 'log'")
        if not 0 <= self.label_noise < 0.5:
            raise RolloutError(f"recipe {self.version!r}: label_noise={self.label_noise!r} must lie in [0, 0.5)")
        if not 0 < self.validation_share < 1:
            raise RolloutError(f"recipe {self.version!r}: validation_share={self.validation_share!r} must be in (0, 1)")
        if self.recent_days < 1 or self.max_rows < 0:
            raise RolloutError(f"recipe {self.version!r}: recent_days must be >= 1 and max_rows >= 0")


class _Source:
    """What both sources share: the versions added so far and their simulated latency."""

    confidences = False  # whether a prediction's confidence is the model's own (worth a drift check)

    def __init__(self) -> None:
        self.models: dict[str, Any] = {}

    def latency(self, version: str, noise: np.ndarray) -> np.ndarray:
        return self.models[version].latency_ms * np.exp(0.3 * noise)

    def reference(self, version: str) -> tuple[np.ndarray, np.ndarray, int] | None:
        """Correctness flags and confidences of ``version`` on held-out requests and the number of distinct
        texts among them, if the source has them."""
        return None


class SimulatedSource(_Source):
    """Simulated behaviours; the same uniform draw decides every model's correctness on a request, so two
    models' errors are positively correlated."""

    def add(self, spec: ModelBehaviour | Recipe, day: int, when: dt.datetime, log: Any) -> dict[str, Any]:
        if not isinstance(spec, ModelBehaviour):
            raise RolloutError(f"{spec!r}: a simulated lifecycle takes ModelBehaviour versions only")
        self.models[spec.version] = spec
        return {"trained_on": spec.trained_on}

    def draw(self, req: dict[str, np.ndarray], rng: np.random.Generator) -> None:
        req["text"] = req["domain"]
        req["truth"] = np.asarray(LABELS, dtype=object)[req["label"]]

    def predict(
        self, version: str, req: Mapping[str, np.ndarray], mask: np.ndarray, day: int
    ) -> tuple[np.ndarray, np.ndarray]:
        correct = req["u"][mask] < self.models[version].accuracy_at(req["domain"][mask], day)
        truth = req["label"][mask]
        return np.asarray(LABELS, dtype=object)[np.where(correct, truth, 1 - truth)], req["conf"][mask]


class ClassifierSource(_Source):
    """Real classifiers on corpus texts (see the module docstring)."""

    confidences = True

    def __init__(self, corpus: TrafficCorpus, first_domain: str, rng: np.random.Generator) -> None:
        super().__init__()
        self.corpus, self.first_domain, self.rng = corpus, first_domain, rng
        self.generation = 0  # traffic generation: retrains on the log so far
        self.fitted: dict[str, Any] = {}
        self.references: dict[str, tuple[np.ndarray, np.ndarray, int]] = {}
        self.cache: dict[tuple[str, bool], dict[str, tuple[str, float]]] = {}

    def add(self, spec: ModelBehaviour | Recipe, day: int, when: dt.datetime, log: Any) -> dict[str, Any]:
        """Train ``spec`` (on the offline set or the log's recent labelled requests); returns its registry
        metadata: what it was trained on (rows, days, domains) and its validation accuracy."""
        if not isinstance(spec, Recipe):
            raise RolloutError(f"{spec!r}: a lifecycle of real classifiers takes Recipe versions only")
        from abkit.models import train_model

        if spec.data == "log":
            rows = _recent_labelled(log, when - dt.timedelta(days=spec.recent_days), when)
            if rows["text"].nunique() < 20:
                raise RolloutError(
                    f"retraining {spec.version}: the log holds {len(rows)} labelled requests from the last "
                    f"{spec.recent_days} days; at least 20 distinct texts are needed"
                )
            self.generation += 1  # from now on traffic is drawn from texts this model never saw
        else:
            rows = self.corpus.part(self.first_domain, TRAIN)
        fit, validation = self._split(rows, spec)
        model = train_model("tfidf_logreg", fit["text"], fit["label"], rng=self.rng, measure_cost=False)
        self.models[spec.version], self.fitted[spec.version] = spec, model
        pred, conf = model.predict(list(validation["text"]))
        correct = pred == validation["label"].to_numpy(dtype=object)
        self.references[spec.version] = (correct, conf, int(validation["text"].nunique()))
        return _metadata(spec, fit, rows, validation, correct, self.corpus, str(getattr(model, "train_hash", "")))

    def _split(self, rows: pd.DataFrame, spec: Recipe) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Distinct training texts (first label wins) and the held-out validation requests (repeats kept, as
        traffic has them), disjoint by text; label noise on the training texts only. Log rows are validated
        out of time: the held-out texts are drawn from the last logged day, so the reference has today's mix."""
        from abkit.data import add_label_noise

        texts = rows["text"].unique()
        recent = rows["ts"].dt.date == rows["ts"].max().date() if "ts" in rows else np.ones(len(rows), bool)
        pool = rows.loc[recent, "text"].unique()
        size = min(max(int(round(spec.validation_share * texts.size)), 1), pool.size - 1)
        held = set(self.rng.choice(pool, size=size, replace=False))
        fit = rows[~rows["text"].isin(held)].drop_duplicates("text")[["text", "label"]]
        if 0 < spec.max_rows < len(fit):
            fit = fit.iloc[np.sort(self.rng.choice(len(fit), size=spec.max_rows, replace=False))]
        if spec.label_noise:
            fit = add_label_noise(fit, spec.label_noise, self.rng)
        return fit.reset_index(drop=True), rows[recent & rows["text"].isin(held)].reset_index(drop=True)

    def reference(self, version: str) -> tuple[np.ndarray, np.ndarray, int] | None:
        return self.references.get(version)

    def draw(self, req: dict[str, np.ndarray], rng: np.random.Generator) -> None:
        req["text"], req["truth"] = self.corpus.draw(req["domain"], self.generation, rng)

    def predict(
        self, version: str, req: Mapping[str, np.ndarray], mask: np.ndarray, day: int
    ) -> tuple[np.ndarray, np.ndarray]:
        spec = self.models[version]
        broken = spec.broken_from_day is not None and day >= spec.broken_from_day
        cache = self.cache.setdefault((version, broken), {})
        texts = req["text"][mask]
        new = [t for t in dict.fromkeys(texts.tolist()) if t not in cache]
        if new:
            served = [urllib.parse.quote(t) for t in new] if broken else new
            labels, conf = self.fitted[version].predict(served)
            cache.update(zip(new, zip(labels.tolist(), conf.tolist(), strict=True), strict=True))
        out = [cache[t] for t in texts.tolist()]
        return np.array([o[0] for o in out], dtype=object), np.array([o[1] for o in out], dtype=np.float64)


def _recent_labelled(log: Any, since: dt.datetime, until: dt.datetime) -> pd.DataFrame:
    """Every labelled request the log holds with ``since <= ts < until`` (each request once): text, label, ts."""
    preds = log.read_predictions().select(["experiment", "request_id", "ts", "text"]).to_pandas()
    labels = log.read_labels().select(["experiment", "request_id", "label"]).to_pandas()
    ts = preds["ts"]
    preds = preds[(ts >= pd.Timestamp(since)) & (ts < pd.Timestamp(until))]
    rows = preds.merge(labels, on=["experiment", "request_id"]).drop_duplicates("request_id")
    return rows.sort_values(["ts", "request_id"]).reset_index(drop=True)[["text", "label", "ts"]]


def _metadata(
    spec: Recipe,
    fit: pd.DataFrame,
    rows: pd.DataFrame,
    validation: pd.DataFrame,
    correct: np.ndarray,
    corpus: TrafficCorpus,
    train_hash: str,
) -> dict[str, Any]:
    domains = pd.Series(corpus.domain_of(fit["text"].tolist())).value_counts().sort_index()
    mix = ", ".join(f"{d} {n / len(fit):.0%}" for d, n in domains.items())
    if spec.data == "log":
        first, last = rows["ts"].min().date().isoformat(), rows["ts"].max().date().isoformat()
        what = f"{len(fit):,} distinct texts of {len(rows):,} labelled requests logged {first} to {last} ({mix})"
        days: list[str] | None = [first, last]
    else:
        what = f"{len(fit):,} texts of the offline {corpus.dataset} training set ({mix})"
        days = None
    if spec.label_noise:
        what += f", {spec.label_noise:.0%} of labels flipped"
    return {
        "kind": "tfidf_logreg",
        "trained_on": f"{spec.trained_on}: {what}" if spec.trained_on else what,
        "data": spec.data,
        "rows": len(fit),
        "labelled_requests": len(rows) if spec.data == "log" else None,
        "days": days,
        "domains": {str(d): int(n) for d, n in domains.items()},
        "label_noise": spec.label_noise,
        "validation_requests": len(validation),
        "validation_accuracy": round(float(np.mean(correct)), 4) if len(correct) else None,
        "train_hash": train_hash,
    }


def make_source(cfg: Any, rng: np.random.Generator) -> SimulatedSource | ClassifierSource:
    """The source for a ``LifecycleConfig``: simulated when its champion is a ``ModelBehaviour``."""
    if isinstance(cfg.champion, ModelBehaviour):
        return SimulatedSource()
    retrains = sum(1 for c in cfg.candidates if isinstance(c, Recipe) and c.data == "log")
    corpus = TrafficCorpus.build(
        cfg.dataset, cfg.domains, 1 + retrains, rng, rows=cfg.corpus_rows, data_dir=cfg.data_dir
    )
    return ClassifierSource(corpus, cfg.domains[0], rng)
