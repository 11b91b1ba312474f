"""An offline synthetic corpus of review-like sentences: the default dataset when none is given.

Sentences come from templates over three domains (``electronics``, ``restaurants``, ``movies``,
mirroring the UCI Amazon / Yelp / IMDb domains) and carry one *phenomenon* each:

``plain``        "The battery is great."
``intensified``  "The battery is really great!"
``negation``     "The battery is not great." (label flips; "not bad" reads positive)
``mixed``        "The screen is great but the battery is awful." (the clause after *but* decides)
``paraphrase``   "The battery is stellar." — opinion words from a held-out lexicon that a bag-of-words
                 model never sees in training (``new_vocab_rate`` > 0 only where you want them)

Drift knobs: ``domain_weights`` (mix), ``new_vocab_rate`` (unseen vocabulary), ``positive_rate``
(label prior), ``length`` (mean number of neutral filler clauses) and ``label_noise``. Labels are the
strings ``"negative"`` / ``"positive"`` like :func:`abkit.data.load_uci`.

>>> import numpy as np
>>> df = make_corpus(4, rng=np.random.default_rng(1))
>>> list(df.columns)
['text', 'label', 'domain', 'phenomenon']
>>> df.equals(make_corpus(4, rng=np.random.default_rng(1)))
True
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from abkit.errors import AbkitError

DOMAINS: tuple[str, ...] = ("electronics", "restaurants", "movies")
PHENOMENA: tuple[str, ...] = ("plain", "intensified", "negation", "mixed", "paraphrase")
LABELS: tuple[str, str] = ("negative", "positive")

_ASPECTS = {
    "electronics": [
        "battery",
        "screen",
        "charger",
        "headset",
        "sound quality",
        "case",
        "camera",
        "keyboard",
        "signal",
        "speaker",
        "cable",
        "build quality",
    ],
    "restaurants": [
        "food",
        "service",
        "pizza",
        "staff",
        "dessert",
        "atmosphere",
        "steak",
        "waiter",
        "menu",
        "coffee",
        "pasta",
        "burger",
    ],
    "movies": [
        "plot",
        "acting",
        "soundtrack",
        "ending",
        "dialogue",
        "cast",
        "script",
        "cinematography",
        "director",
        "story",
        "pacing",
        "lead actor",
    ],
}
_THINGS = {
    "electronics": ["phone", "product", "device", "gadget"],
    "restaurants": ["place", "restaurant", "meal", "visit"],
    "movies": ["movie", "film", "picture", "show"],
}
# Opinion words seen in training (generic + domain-specific) ...
_SEEN = {
    "positive": ["good", "great", "excellent", "amazing", "fantastic", "wonderful", "nice", "perfect"],
    "negative": ["bad", "terrible", "awful", "poor", "horrible", "disappointing", "useless", "weak"],
}
_SEEN_DOMAIN = {
    "electronics": {"positive": ["reliable", "sturdy", "crisp"], "negative": ["flimsy", "broken", "faulty"]},
    "restaurants": {"positive": ["delicious", "tasty", "friendly"], "negative": ["bland", "cold", "rude"]},
    "movies": {"positive": ["gripping", "brilliant", "moving"], "negative": ["boring", "dull", "predictable"]},
}
# ... and a held-out lexicon whose meaning a sentence encoder knows but a bag of words cannot.
_UNSEEN = {
    "positive": [
        "superb",
        "stellar",
        "marvelous",
        "splendid",
        "terrific",
        "outstanding",
        "phenomenal",
        "magnificent",
        "exceptional",
        "first-rate",
        "top-notch",
        "impressive",
    ],
    "negative": [
        "dreadful",
        "atrocious",
        "abysmal",
        "lousy",
        "dismal",
        "appalling",
        "pathetic",
        "subpar",
        "miserable",
        "shoddy",
        "woeful",
        "inferior",
    ],
}
_INTENSIFIERS = ["really", "very", "absolutely", "extremely", "truly", "incredibly", "so"]
_NEGATIONS = ["is not", "was not", "isn't", "wasn't", "is never", "was hardly"]
_COPULAS = ["is", "was", "seemed", "felt"]
_FILLERS = {
    "electronics": [
        "I bought it last month.",
        "It arrived on Tuesday.",
        "I use it every day at work.",
        "My brother has the same model.",
        "It came in a blue box.",
    ],
    "restaurants": [
        "We went there on a Friday night.",
        "It is close to my office.",
        "We had a table by the window.",
        "I came with two friends.",
        "We ordered for four.",
    ],
    "movies": [
        "I watched it last weekend.",
        "It runs about two hours.",
        "I saw it with my sister.",
        "It came out last year.",
        "We streamed it at home.",
    ],
}


class CorpusError(AbkitError):
    """A synthetic-corpus knob is out of range."""


def _pick(rng: np.random.Generator, options: list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _opinion(rng: np.random.Generator, domain: str, polarity: str, unseen: bool) -> str:
    if unseen:
        return _pick(rng, _UNSEEN[polarity])
    return _pick(rng, _SEEN[polarity] + _SEEN_DOMAIN[domain][polarity])


def _subject(rng: np.random.Generator, domain: str, other_than: str | None = None) -> str:
    aspects = [a for a in _ASPECTS[domain] + _THINGS[domain] if a != other_than]
    return _pick(rng, aspects)


def _sentence(rng: np.random.Generator, domain: str, label: str, phenomenon: str) -> str:
    other = "negative" if label == "positive" else "positive"
    subject = _subject(rng, domain)
    if phenomenon == "negation":
        # "not <opposite>" carries the label; "not bad" reads positive, "not good" negative.
        return f"The {subject} {_pick(rng, _NEGATIONS)} {_opinion(rng, domain, other, False)}."
    if phenomenon == "mixed":
        second = _subject(rng, domain, other_than=subject)
        return (
            f"The {subject} {_pick(rng, _COPULAS)} {_opinion(rng, domain, other, False)} but the "
            f"{second} {_pick(rng, _COPULAS)} {_opinion(rng, domain, label, False)}."
        )
    word = _opinion(rng, domain, label, unseen=phenomenon == "paraphrase")
    if phenomenon == "intensified":
        return f"The {subject} {_pick(rng, _COPULAS)} {_pick(rng, _INTENSIFIERS)} {word}!"
    if rng.random() < 0.5:
        return f"The {subject} {_pick(rng, _COPULAS)} {word}."
    article = "an" if word[0] in "aeiou" else "a"
    return f"What {article} {word} {_pick(rng, _THINGS[domain])}."


def _weights(domain_weights: Mapping[str, float] | None) -> np.ndarray:
    if domain_weights is None:
        return np.full(len(DOMAINS), 1.0 / len(DOMAINS))
    unknown = sorted(set(domain_weights) - set(DOMAINS))
    if unknown:
        raise CorpusError(f"domain_weights has unknown domain(s) {unknown}; use {list(DOMAINS)}.")
    w = np.array([float(domain_weights.get(d, 0.0)) for d in DOMAINS])
    if (w < 0).any() or w.sum() <= 0:
        raise CorpusError(f"domain_weights={dict(domain_weights)!r} must be >= 0 with a positive sum.")
    return w / w.sum()


def _check_rate(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise CorpusError(f"{name}={value!r} must lie in [0, 1].")
    return float(value)


def make_corpus(
    n: int,
    *,
    rng: np.random.Generator | int,
    domain_weights: Mapping[str, float] | None = None,
    positive_rate: float = 0.5,
    new_vocab_rate: float = 0.0,
    negation_rate: float = 0.15,
    mixed_rate: float = 0.10,
    intensifier_rate: float = 0.20,
    label_noise: float = 0.0,
    length: float = 0.5,
) -> pd.DataFrame:
    """Generate ``n`` labelled sentences with columns text, label, domain, phenomenon.

    Each row's phenomenon is drawn with probabilities ``new_vocab_rate`` (paraphrase),
    ``negation_rate``, ``mixed_rate``, ``intensifier_rate`` and the rest ``plain``; ``length`` is the
    mean (Poisson) number of neutral filler sentences added around the opinion; ``label_noise``
    flips that fraction of labels after generation (the text keeps its true sentiment).
    """
    if int(n) != n or n < 0:
        raise CorpusError(f"n={n!r} must be a non-negative integer number of sentences.")
    rates = [
        _check_rate(name, v)
        for name, v in (
            ("new_vocab_rate", new_vocab_rate),
            ("negation_rate", negation_rate),
            ("mixed_rate", mixed_rate),
            ("intensifier_rate", intensifier_rate),
        )
    ]
    if sum(rates) > 1.0:
        raise CorpusError(
            f"phenomenon rates new_vocab_rate + negation_rate + mixed_rate + intensifier_rate "
            f"sum to {sum(rates):.3f} > 1; lower some of them."
        )
    _check_rate("positive_rate", positive_rate)
    _check_rate("label_noise", label_noise)
    if length < 0:
        raise CorpusError(f"length={length!r} must be >= 0 (mean number of filler sentences).")
    rng = np.random.default_rng(rng)
    probs = np.array([1.0 - sum(rates), intensifier_rate, negation_rate, mixed_rate, new_vocab_rate])
    domains = rng.choice(len(DOMAINS), size=n, p=_weights(domain_weights))
    phenomena = rng.choice(len(PHENOMENA), size=n, p=probs / probs.sum())
    positive = rng.random(n) < positive_rate
    n_fillers = rng.poisson(length, size=n)
    texts: list[str] = []
    for d, p, pos, k in zip(domains, phenomena, positive, n_fillers, strict=True):
        domain = DOMAINS[d]
        parts = [_sentence(rng, domain, LABELS[int(pos)], PHENOMENA[p])]
        for _ in range(k):
            filler = _pick(rng, _FILLERS[domain])
            parts.insert(int(rng.integers(len(parts) + 1)), filler)
        texts.append(" ".join(parts))
    labels = np.where(positive, LABELS[1], LABELS[0]).astype(object)
    flip = rng.random(n) < label_noise
    labels[flip] = np.where(positive[flip], LABELS[0], LABELS[1])
    return pd.DataFrame(
        {
            "text": texts,
            "label": labels.astype(str),
            "domain": [DOMAINS[d] for d in domains],
            "phenomenon": [PHENOMENA[p] for p in phenomena],
        }
    )


def phenomenon_suite(
    n_per_phenomenon: int, *, rng: np.random.Generator | int, domain_weights: Mapping[str, float] | None = None
) -> pd.DataFrame:
    """``n_per_phenomenon`` noise-free sentences of each phenomenon, for per-phenomenon accuracy."""
    rng = np.random.default_rng(rng)
    zero = {"new_vocab_rate": 0.0, "negation_rate": 0.0, "mixed_rate": 0.0, "intensifier_rate": 0.0}
    frames = []
    for knob in (None, "intensifier_rate", "negation_rate", "mixed_rate", "new_vocab_rate"):
        rates = dict(zero, **({knob: 1.0} if knob else {}))
        frames.append(make_corpus(n_per_phenomenon, rng=rng, domain_weights=domain_weights, **rates))
    return pd.concat(frames, ignore_index=True)
