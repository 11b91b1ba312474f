"""abkit.synthetic: seeded generation, phenomena and drift knobs."""

from __future__ import annotations

import numpy as np
import pytest

from abkit.synthetic import _SEEN, _SEEN_DOMAIN, _UNSEEN, DOMAINS, PHENOMENA, CorpusError, make_corpus, phenomenon_suite


def _within(observed: float, p: float, n: int) -> bool:
    return abs(observed - p) <= 4 * np.sqrt(p * (1 - p) / n)


def test_same_seed_same_corpus_other_seed_other_corpus():
    a = make_corpus(300, rng=np.random.default_rng(5))
    assert a.equals(make_corpus(300, rng=5))
    assert not a["text"].equals(make_corpus(300, rng=6)["text"])
    assert set(a["domain"]) == set(DOMAINS) and set(a["label"]) == {"negative", "positive"}


def test_phenomenon_and_prior_rates():
    n = 4000
    df = make_corpus(
        n, rng=1, positive_rate=0.3, negation_rate=0.2, mixed_rate=0.1, intensifier_rate=0.1, new_vocab_rate=0.25
    )
    shares = df["phenomenon"].value_counts(normalize=True)
    for phenomenon, p in [
        ("negation", 0.2),
        ("mixed", 0.1),
        ("intensified", 0.1),
        ("paraphrase", 0.25),
        ("plain", 0.35),
    ]:
        assert _within(shares[phenomenon], p, n), phenomenon
    assert _within((df["label"] == "positive").mean(), 0.3, n)


def test_domain_mix_and_length_knobs():
    only_movies = make_corpus(200, rng=2, domain_weights={"movies": 1.0})
    assert set(only_movies["domain"]) == {"movies"}
    sentences = lambda df: df["text"].str.count(r"[.!?](?: |$)").mean()  # noqa: E731
    short, long = make_corpus(1000, rng=3, length=0.0), make_corpus(1000, rng=3, length=3.0)
    assert sentences(short) == 1.0
    assert abs(sentences(long) - 4.0) < 0.2  # one opinion + Poisson(3) fillers


def test_paraphrases_use_only_the_unseen_lexicon():
    para = make_corpus(300, rng=4, new_vocab_rate=1.0, negation_rate=0, mixed_rate=0, intensifier_rate=0)
    seen = set(_SEEN["positive"] + _SEEN["negative"]) | {
        w for d in _SEEN_DOMAIN.values() for ws in d.values() for w in ws
    }
    unseen = set(_UNSEEN["positive"] + _UNSEEN["negative"])
    words = para["text"].str.lower().str.findall(r"[a-z-]+")
    assert words.map(lambda ws: bool(unseen & set(ws)) and not seen & set(ws)).all()
    assert (para["phenomenon"] == "paraphrase").all()


def test_negation_flips_the_opinion_word():
    neg = make_corpus(200, rng=5, negation_rate=1.0, mixed_rate=0, intensifier_rate=0, length=0)
    positive_words = set(_SEEN["positive"]) | {w for d in _SEEN_DOMAIN.values() for w in d["positive"]}
    has_positive_word = neg["text"].str.lower().str.findall(r"[a-z-]+").map(lambda ws: bool(positive_words & set(ws)))
    # "not <positive word>" is negative, "not <negative word>" is positive
    assert ((neg["label"] == "negative") == has_positive_word).all()


def test_label_noise_flips_labels_not_texts():
    clean = make_corpus(3000, rng=6)
    noisy = make_corpus(3000, rng=6, label_noise=0.1)
    assert clean["text"].equals(noisy["text"])
    assert _within((clean["label"] != noisy["label"]).mean(), 0.1, 3000)


def test_phenomenon_suite_is_balanced():
    suite = phenomenon_suite(7, rng=0)
    assert suite["phenomenon"].value_counts().to_dict() == {p: 7 for p in PHENOMENA}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"n": -1}, "n=-1"),
        ({"n": 5, "positive_rate": 1.5}, "positive_rate=1.5"),
        ({"n": 5, "negation_rate": 0.6, "mixed_rate": 0.6}, "sum to 1.400"),
        ({"n": 5, "domain_weights": {"cars": 1.0}}, r"unknown domain\(s\) \['cars'\]"),
        ({"n": 5, "domain_weights": {"movies": 0.0}}, "positive sum"),
        ({"n": 5, "length": -1}, "length=-1"),
    ],
)
def test_bad_knobs(kwargs, match):
    with pytest.raises(CorpusError, match=match):
        make_corpus(rng=0, **kwargs)
