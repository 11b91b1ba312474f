"""Benchmark models and the simulator.

Measures, in one run: batched MiniLM inference vs a one-text-at-a-time loop (ratio), TF-IDF
throughput, the simulator's requests per second (TF-IDF arms, so the figure is the simulator's own
cost), and per-phenomenon accuracy of TF-IDF vs MiniLM trained on the same synthetic texts.

Usage: ``.venv/bin/python benchmarks/bench_models_sim.py [--quick]``; prints JSON, exits 1 when a
target is missed (never with ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time

from abkit.experiment import Experiment
from abkit.models import evaluate, train_model
from abkit.simulate import SimulationConfig, simulate
from abkit.synthetic import make_corpus, phenomenon_suite

TARGETS = {
    "minilm_batch_speedup": 3.0,  # batched inference at least 3x the per-text loop
    "simulator_requests_per_s": 20_000.0,  # simulator (TF-IDF arms) end to end, log writes included
    "paraphrase_gain_minilm_minus_tfidf": 0.2,  # MiniLM must win clearly on unseen vocabulary ...
    "mixed_gain_tfidf_minus_minilm": 0.0,  # ... and not on "X but Y" sentences
}


def _throughput(fn, n_texts: int) -> float:
    t0 = time.perf_counter()
    fn()
    return n_texts / (time.perf_counter() - t0)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes; never fails on targets")
    args = parser.parse_args()
    n_train, n_infer, n_loop, n_users, n_suite = (
        (300, 256, 64, 1000, 40) if args.quick else (2000, 1024, 256, 20_000, 200)
    )

    train = make_corpus(n_train, rng=1, label_noise=0.05)
    texts = make_corpus(n_infer, rng=2)["text"].tolist()
    tfidf = train_model("tfidf_logreg", train["text"], train["label"], rng=0)
    minilm = train_model("minilm_logreg", train["text"], train["label"], rng=0)
    minilm.predict(texts[:8])  # warm-up

    batched = _throughput(lambda: minilm.predict(texts), len(texts))
    loop = _throughput(lambda: [minilm.predict([t]) for t in texts[:n_loop]], n_loop)
    tfidf_batched = _throughput(lambda: tfidf.predict(texts), len(texts))

    suite = phenomenon_suite(n_suite, rng=3)
    accuracy = {
        name: {ph: round(evaluate(m, g["text"], g["label"])["accuracy"], 3) for ph, g in suite.groupby("phenomenon")}
        for name, m in (("tfidf_logreg", tfidf), ("minilm_logreg", minilm))
    }

    pool = make_corpus(3000, rng=4, new_vocab_rate=0.1)
    weak = train_model("tfidf_logreg", train["text"][:200], train["label"][:200], rng=0)
    experiment = Experiment.from_params(key="bench", variant_names="champion,challenger", duration_days=14)
    with tempfile.TemporaryDirectory() as root:
        t0 = time.perf_counter()
        summary = simulate(
            experiment,
            {"champion": weak, "challenger": tfidf},
            pool,
            root,
            config=SimulationConfig(n_users=n_users, progress=False),
            rng=5,
        )
        sim_seconds = time.perf_counter() - t0

    figures = {
        "quick": args.quick,
        "minilm_batched_texts_per_s": round(batched, 1),
        "minilm_loop_texts_per_s": round(loop, 1),
        "minilm_batch_speedup": round(batched / loop, 2),
        "tfidf_batched_texts_per_s": round(tfidf_batched, 1),
        "tfidf_vs_minilm_batched_ratio": round(tfidf_batched / batched, 1),
        "minilm_cost_profile_p50_ms": round(minilm.cost_profile.p50_ms, 2),
        "tfidf_cost_profile_p50_ms": round(tfidf.cost_profile.p50_ms, 2),
        "simulator_requests": summary.n_requests,
        "simulator_seconds": round(sim_seconds, 2),
        "simulator_requests_per_s": round(summary.n_requests / sim_seconds, 1),
        "phenomenon_accuracy": accuracy,
        "paraphrase_gain_minilm_minus_tfidf": round(
            accuracy["minilm_logreg"]["paraphrase"] - accuracy["tfidf_logreg"]["paraphrase"], 3
        ),
        "negation_gain_minilm_minus_tfidf": round(
            accuracy["minilm_logreg"]["negation"] - accuracy["tfidf_logreg"]["negation"], 3
        ),
        "mixed_gain_tfidf_minus_minilm": round(
            accuracy["tfidf_logreg"]["mixed"] - accuracy["minilm_logreg"]["mixed"], 3
        ),
        "targets": TARGETS,
    }
    missed = [k for k, v in TARGETS.items() if not figures[k] > v]
    figures["missed_targets"] = missed
    print(json.dumps(figures, indent=2))
    return 1 if missed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
