"""Benchmark of the rollout: the cost of evaluating every gate of a stage on a large log, against one full
analysis of the same log in the same run, and the policy's error rates over many seeded lifecycles.

    .venv/bin/python benchmarks/bench_rollout.py [--quick] [--rows N] [--seeds N]

- ``gates_s``: evidence for a stage from the log (``abkit.rollout.evidence.gather``: the analysis without the
  daily view) plus the policy's ``next_step``; ``full_analysis_s``: ``analyze`` as notebook 20_analyze runs it
  (with the daily sequential view). Target: gates ≤ 2× the full analysis (best of interleaved rounds).
- ``worse_passed_first_stage_rate``: share of seeded lifecycles in which a challenger 6 points worse than the
  champion passed its first canary stage (target: 0 in the large majority; reported with its count);
  ``better_promoted_rate``: share in which a challenger 5 points better ended promoted.

Prints one JSON object; exits 1 when a target is missed (never with --quick).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROUNDS = 3
TARGETS = {"ratio_gates_vs_full_analysis": 2.0, "worse_passed_first_stage_rate": 0.05, "better_promoted_rate": 0.9}


def _policy() -> Any:
    from abkit.rollout import RolloutPolicy

    return RolloutPolicy(
        stages=(0.1, 0.25, 0.5, 1.0),
        min_units=300,
        primary_margin=0.02,
        stage_deadline_days=6,
        watch_days=6,
        guardrails=({"metric": "latency_ms", "statistic": "p95", "margin": 10.0},),
    )


def bench_gates(rows: int) -> dict[str, Any]:
    from bench_stats import make_log

    from abkit.analysis import analyze
    from abkit.experiment import Experiment
    from abkit.rollout import RolloutState, next_step
    from abkit.rollout.evidence import gather

    policy = _policy()
    exp = Experiment.from_params(key="bench", start="2024-01-01", duration_days=14)
    state = RolloutState("canary", "control", dt.datetime(2024, 1, 1, tzinfo=dt.UTC), "challenger", stage=2)
    now = dt.datetime(2024, 1, 15, tzinfo=dt.UTC)

    def gates() -> Any:
        return next_step(state, gather(root, exp, now, policy), policy)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "log"
        t0 = time.perf_counter()
        make_log(root, rows)
        res: dict[str, Any] = {"rows": rows, "write_s": round(time.perf_counter() - t0, 2)}
        analyze(root, exp, daily=False)  # warm the page cache
        times: dict[str, list[float]] = {"gates": [], "full_analysis": [], "analysis_no_daily": []}
        fns = {
            "gates": gates,
            "full_analysis": lambda: analyze(root, exp),
            "analysis_no_daily": lambda: analyze(root, exp, daily=False),
        }
        out: dict[str, Any] = {}
        for _ in range(ROUNDS):
            for k, fn in fns.items():
                t = time.perf_counter()
                out[k] = fn()
                times[k].append(time.perf_counter() - t)
    for k, ts in times.items():
        res[f"{k}_s"], res[f"{k}_median_s"] = min(ts), statistics.median(ts)
    res["ratio_gates_vs_full_analysis"] = res["gates_s"] / res["full_analysis_s"]
    res["ratio_gates_vs_analysis_no_daily"] = res["gates_s"] / res["analysis_no_daily_s"]
    res["gate_action"] = out["gates"].action
    res["gate_statuses"] = {g.name: g.status for g in out["gates"].gate_results}
    return res


def bench_seeds(seeds: int) -> dict[str, Any]:
    from abkit.rollout.lifecycle import LifecycleConfig, ModelBehaviour, run_lifecycle

    policy = _policy()
    v1 = ModelBehaviour("v1", {"electronics": 0.90}, 20.0)
    worse = ModelBehaviour("v3", {"electronics": 0.84}, 20.0)
    better = ModelBehaviour("v2", {"electronics": 0.95}, 21.0)
    res: dict[str, Any] = {}
    for name, cand, n, days in (("worse", worse, seeds, 8), ("better", better, max(seeds // 3, 3), 14)):
        passed, promoted, aborted_at = 0, 0, []
        t0 = time.perf_counter()
        for seed in range(n):
            cfg = LifecycleConfig(
                champion=v1,
                candidates=(cand,),
                start_with_challenger=True,
                shift_day=None,
                days=days,
                users_per_day=3000,
                n_users=12_000,
                key=f"s{seed}",
            )
            with tempfile.TemporaryDirectory() as tmp:
                r = run_lifecycle(cfg, policy, tmp, seed=1000 + seed)
            acts = r.actions()
            passed += any(d.action == "advance" and d.phase == "canary" and d.stage == 0 for d in r.decisions)
            promoted += "promote" in acts
            aborted_at += [d.stage for d in r.decisions if d.action == "abort"]
        res[f"{name}_seeds"] = n
        res[f"{name}_s"] = round(time.perf_counter() - t0, 1)
        if name == "worse":
            res["worse_passed_first_stage"] = passed
            res["worse_passed_first_stage_rate"] = passed / n
            res["worse_aborted_at_stage_0"] = sum(1 for s in aborted_at if s == 0)
        else:
            res["better_promoted"] = promoted
            res["better_promoted_rate"] = promoted / n
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes; never fails on targets")
    ap.add_argument("--rows", type=int, default=None, help="rows in the log (default 10 M, quick 200 k)")
    ap.add_argument("--seeds", type=int, default=None, help="seeded lifecycles for the error rates (default 100)")
    args = ap.parse_args(argv)
    rows = args.rows or (200_000 if args.quick else 10_000_000)
    seeds = args.seeds or (6 if args.quick else 100)
    res = bench_gates(rows) | bench_seeds(seeds)
    checks = {
        "ratio_gates_vs_full_analysis": res["ratio_gates_vs_full_analysis"] <= TARGETS["ratio_gates_vs_full_analysis"],
        "worse_passed_first_stage_rate": res["worse_passed_first_stage_rate"]
        <= TARGETS["worse_passed_first_stage_rate"],
        "better_promoted_rate": res["better_promoted_rate"] >= TARGETS["better_promoted_rate"],
    }
    res = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()}
    res["targets"], res["met"] = TARGETS, checks
    print(json.dumps(res, indent=2))
    return 0 if args.quick or all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
