"""Calibration: simulated experiments through the analysis code path, to prove error rates.

Each simulated experiment hashes its users into arms with ``abkit.assign`` (a fresh seed per
simulation), gives every user several predictions (1 + Poisson), a label for a share of them and a
user-level skill (Beta), so predictions are clustered by user. The per-user sums become ``ArmStats``
(vectorized across simulations and looks) and go through the same ``abkit.stats`` functions and decision
rule as :func:`abkit.analysis.analyze`: Welch t on the delta-method ratio for the fixed horizon, the
GrowthBook/Eppo confidence sequence for the sequential looks.

``write_log`` writes the same kind of simulated experiment as a Parquet prediction log, for notebooks,
tests and benchmarks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from abkit.errors import AbkitError
from abkit.stats.aggregates import ArmStats, Moments
from abkit.stats.config import check_alpha, resolve
from abkit.stats.frequentist import ttest
from abkit.stats.sequential import confidence_sequence

SPARSE_LABELS = (3, 10, 30)  # labelled users per arm in the sparse-label calibration


@dataclasses.dataclass(frozen=True)
class UserModel:
    """How simulated users behave (all arms alike unless an effect is given)."""

    n_users: int = 1000  # users per simulated experiment (all arms)
    requests_per_user: float = 5.0  # mean predictions per user: 1 + Poisson(mean − 1)
    label_rate: float = 0.5  # chance that a prediction gets a label
    accuracy: float = 0.8  # mean accuracy of control
    concentration: float = 8.0  # Beta concentration of user skill (lower = more clustered)

    def __post_init__(self) -> None:
        if self.n_users < 4:
            raise AbkitError(f"n_users={self.n_users!r} must be >= 4")
        if self.requests_per_user < 1:
            raise AbkitError(f"requests_per_user={self.requests_per_user!r} must be >= 1")
        for name in ("label_rate", "accuracy"):
            v = getattr(self, name)
            if not 0 < v < 1:
                raise AbkitError(f"{name}={v!r} must lie strictly between 0 and 1")
        if self.concentration <= 0:
            raise AbkitError(f"concentration={self.concentration!r} must be > 0")


def _rng(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _user_skill(rng: np.random.Generator, model: UserModel, arm: np.ndarray, effect: float) -> np.ndarray:
    """Per-user accuracy; the challenger (arm 1) gets ``effect`` added to the mean without leaving [0, 1]."""
    a = model.accuracy * model.concentration
    p = rng.beta(a, model.concentration - a, size=arm.shape)
    if effect:
        if not -model.accuracy < effect < 1 - model.accuracy:
            raise AbkitError(f"effect={effect!r} must keep the challenger's accuracy within (0, 1)")
        lift = effect / (1 - model.accuracy) * (1 - p) if effect > 0 else effect / model.accuracy * p
        p = np.where(arm == 1, p + lift, p)
    return p


def _assign(seed: str, sims: range, ids: np.ndarray) -> np.ndarray:
    from abkit.assign import assign_many, bucket_ranges

    ranges = bucket_ranges(2, 1.0, [0.5, 0.5])
    return np.stack([assign_many(ids, seed=f"{seed}-{s}", ranges=ranges) for s in sims])


def _labelled_users(rng: np.random.Generator, arm: np.ndarray, k: int) -> np.ndarray:
    """Per (sim, user): True for exactly ``k`` random users of each arm (all of an arm's users if it has fewer);
    ``arm`` −1 (not in the test) is never chosen."""
    key = arm + rng.random(arm.shape)  # arms in order; within an arm, a random order
    rank = np.empty_like(arm)
    np.put_along_axis(rank, np.argsort(key, axis=-1), np.broadcast_to(np.arange(arm.shape[-1]), arm.shape), axis=-1)
    for a in range(-1, int(arm.max(initial=-1))):  # rank within the arm: minus the users of the arms before it
        rank -= np.where(arm > a, (arm == a).sum(axis=-1, keepdims=True), 0)
    return (arm >= 0) & (rank < k)


def _simulate(
    rng: np.random.Generator,
    model: UserModel,
    n_sims: int,
    looks: int,
    effect: float,
    seed_tag: str,
    chunk: int = 1000,
    labelled_per_arm: int | None = None,
) -> ArmStats:
    """Cumulative ArmStats of accuracy with arrays of shape (sims, looks, 2) over the users that carry it
    (labelled users), as the SQL reduction gives them. ``labelled_per_arm``: only that many users per arm get
    labels (each at least one), for sparse-label calibration."""
    ids = np.array([f"user-{i}" for i in range(model.n_users)])
    fields = np.zeros((6, n_sims, 2, looks))
    for lo in range(0, n_sims, chunk):
        hi = min(n_sims, lo + chunk)
        arm = _assign(seed_tag, range(lo, hi), ids)  # (s, users): hashed assignment
        s = hi - lo
        n_req = 1 + rng.poisson(model.requests_per_user - 1, size=arm.shape)
        if labelled_per_arm is None:
            lab = rng.binomial(n_req, model.label_rate)
        else:
            chosen = _labelled_users(rng, arm, labelled_per_arm)
            lab = np.where(chosen, 1 + rng.binomial(n_req - 1, model.label_rate), 0)
        k = rng.binomial(lab, _user_skill(rng, model, arm, effect))
        look = rng.integers(0, looks, size=arm.shape)  # the look at which the user's data arrives
        idx = ((np.arange(s)[:, None] * 2 + arm) * looks + look).ravel()
        ok = (arm >= 0).ravel()
        kf, lf = k.ravel().astype(np.float64), lab.ravel().astype(np.float64)
        size = s * 2 * looks
        carries = (lf > 0).astype(np.float64)  # a user without labels carries no accuracy data
        for f, w in enumerate((carries, kf, kf * kf, lf, lf * lf, kf * lf)):
            fields[f, lo:hi] = np.bincount(idx[ok], w[ok], minlength=size).reshape(s, 2, looks)
    cum = np.cumsum(fields, axis=-1).transpose(0, 1, 3, 2)  # (6, sims, looks, arms)
    return ArmStats(*cum)


def _arms(st: ArmStats) -> tuple[Moments, Moments]:
    mo = st.moments()
    return Moments(mo.mean[..., 0], mo.var[..., 0], mo.n[..., 0]), Moments(
        mo.mean[..., 1], mo.var[..., 1], mo.n[..., 1]
    )


def _rate(hits: np.ndarray) -> tuple[float, float]:
    """A share and its Monte-Carlo standard error."""
    r = float(np.mean(hits))
    return r, math.sqrt(r * (1 - r) / hits.size)


def calibrate(
    n_sims: int,
    *,
    seed: int | np.random.Generator = 0,
    looks: int = 20,
    alpha: float = 0.05,
    effect: float = 0.03,
    model: UserModel | None = None,
    sequential_tuning: float | None = None,
    with_power: bool = True,
    sparse: Sequence[int] = SPARSE_LABELS,
    min_labelled_units: int | None = None,
) -> dict[str, Any]:
    """Run ``n_sims`` A/A and ``n_sims`` A/B simulated experiments; return error rates with Monte-Carlo SEs.

    Keys: ``n_sims``, ``fpr_fixed`` (A/A, final look), ``fpr_sequential`` (A/A, confidence sequence rejects
    at any of ``looks``), ``fpr_naive_peeking`` (A/A, fixed-horizon test at every look), ``coverage`` (share
    of A/B intervals that contain the true accuracy difference ``effect``), ``power`` (A/B, significant and
    positive at the final look), their ``*_mc_se``, and the simulation settings. ``with_power=False`` runs
    the A/A simulations only (``coverage`` is then the A/A coverage of 0).

    ``fpr_fixed_sparse``: per number of labelled users per arm in ``sparse`` (the other users unlabelled), the
    A/A false-positive rate of the fixed-horizon test (``fpr``, ``mc_se``), the share of experiments with no
    estimable variance (``insufficient``) and whether ``decide`` withholds any verdict at that evidence
    (``decision_withheld``: fewer than ``min_labelled_units`` labelled users per arm).
    """
    if int(n_sims) != n_sims or n_sims < 1:
        raise AbkitError(f"n_sims={n_sims!r} must be a positive integer")
    if looks < 1:
        raise AbkitError(f"looks={looks!r} must be >= 1")
    a = check_alpha(alpha)
    model = model or UserModel()
    rng = _rng(seed)
    tuning = float(sequential_tuning if sequential_tuning is not None else model.n_users)
    t0 = time.perf_counter()
    out: dict[str, Any] = {"n_sims": int(n_sims)}
    for name, eff in (("aa", 0.0), ("ab", effect))[: 2 if with_power else 1]:
        c, t = _arms(_simulate(rng, model, int(n_sims), looks, eff, f"calibrate-{name}-{rng.integers(1 << 31)}"))
        res = ttest(c, t, alpha=a)
        p = np.nan_to_num(res.p_value, nan=1.0)
        final = slice(None), -1
        if name == "aa":
            seq = confidence_sequence(res.estimate, res.se, c.n + t.n, tuning=tuning, alpha=a)
            out["fpr_fixed"] = float(np.mean(p[final] < a))
            out["fpr_sequential"] = float(np.mean(np.any(np.nan_to_num(seq.p_value, nan=1.0) < a, axis=-1)))
            out["fpr_naive_peeking"] = float(np.mean(np.any(p < a, axis=-1)))
            out["coverage_aa"] = float(np.mean((res.ci_low[final] <= 0) & (res.ci_high[final] >= 0)))
        else:
            out["coverage"] = float(np.mean((res.ci_low[final] <= eff) & (res.ci_high[final] >= eff)))
            out["power"] = float(np.mean((p[final] < a) & (res.estimate[final] > 0)))
    if not with_power:
        out.update(coverage=out["coverage_aa"], power=None)
    floor = int(resolve("min_labelled_units", min_labelled_units))
    out["fpr_fixed_sparse"] = {}
    for k in sparse:
        if int(k) != k or k < 1 or 2 * k > model.n_users:
            raise AbkitError(
                f"sparse={list(sparse)} must hold whole numbers of labelled users per arm in [1, n_users/2]"
            )
        c, t = _arms(
            _simulate(
                rng, model, int(n_sims), 1, 0.0, f"calibrate-sparse{k}-{rng.integers(1 << 31)}", labelled_per_arm=int(k)
            )
        )
        p = ttest(c, t, alpha=a).p_value[:, -1]
        fpr, se = _rate(np.nan_to_num(p, nan=1.0) < a)
        out["fpr_fixed_sparse"][str(int(k))] = {
            "fpr": fpr,
            "mc_se": se,
            "insufficient": float(np.mean(np.isnan(p))),
            "decision_withheld": bool(k < floor),
        }
    for key in ("fpr_fixed", "fpr_sequential", "fpr_naive_peeking", "coverage", "power"):
        if out[key] is not None:
            out[f"{key}_mc_se"] = math.sqrt(out[key] * (1 - out[key]) / n_sims)
    out.update(
        alpha=a,
        looks=int(looks),
        effect=float(effect),
        effect_metric="accuracy (absolute difference)",
        sequential_method=f"confidence sequence (N={tuning:g})",
        min_labelled_units=floor,
        fixed_method="Welch t, delta-method ratio over the users carrying the metric (labelled users)",
        users_per_sim=model.n_users,
        requests_per_user=model.requests_per_user,
        label_rate=model.label_rate,
        accuracy=model.accuracy,
        concentration=model.concentration,
        seconds=round(time.perf_counter() - t0, 3),
    )
    return out


def calibrate_decisions(
    n_sims: int,
    *,
    seed: int | np.random.Generator = 0,
    alpha: float = 0.05,
    effect: float = 0.1,
    model: UserModel | None = None,
    sparse: Sequence[int] = SPARSE_LABELS,
    inference: str = "sequential",
) -> dict[str, Any]:
    """Whole experiments through the real path: each is written by the log writer (:func:`write_log`), reduced
    by the SQL of :func:`abkit.analysis.analyze` (DuckDB) and decided by :func:`abkit.decide.decide`.

    Keys: ``false_ship_rate_aa`` (A/A experiments that ship), ``ship_rate_ab`` (A/B with accuracy + ``effect``
    that ship the challenger), ``fpr_fixed_aa`` (A/A whose fixed-horizon accuracy test rejects),
    ``false_ship_rate_sparse`` (A/A with only ``k`` labelled users per arm, for each ``k`` in ``sparse``),
    the counts of every decision and their Monte-Carlo standard errors (``*_mc_se``).
    """
    import tempfile

    from abkit.analysis import analyze
    from abkit.experiment import Experiment

    if int(n_sims) != n_sims or n_sims < 1:
        raise AbkitError(f"n_sims={n_sims!r} must be a positive integer")
    a = check_alpha(alpha)
    model = model or UserModel(n_users=600)
    rng = _rng(seed)
    t0 = time.perf_counter()
    runs = [("aa", 0.0, None), ("ab", effect, None)] + [(f"sparse{k}", 0.0, int(k)) for k in sparse]
    out: dict[str, Any] = {"decision_sims": int(n_sims)}
    with tempfile.TemporaryDirectory(prefix="abkit-calibrate-") as tmp:
        for name, eff, labelled in runs:
            decisions: dict[str, int] = {}
            ships, fixed = [], []
            for i in range(int(n_sims)):
                exp = Experiment.from_params(
                    key=f"cal-{name}-{i}", start="2024-03-01", duration_days=1
                )  # one partition
                root = Path(tmp) / f"{name}-{i}"
                write_log(
                    root,
                    exp,
                    n_users=model.n_users,
                    requests_per_user=model.requests_per_user,
                    label_rate=model.label_rate,
                    labelled_users=labelled,
                    seed=rng,
                    accuracy={"control": model.accuracy, "challenger": model.accuracy + eff},
                )
                res = analyze(root, exp, alpha=a, inference=inference, daily=False)
                rec = res.recommendation
                decisions[rec.decision] = decisions.get(rec.decision, 0) + 1
                ships.append(rec.decision == "ship")
                acc = next(c for c in res.comparisons if c.metric == "accuracy")
                fixed.append(acc.p_value < a)  # NaN (insufficient data) is no rejection
            rate, se = _rate(np.array(ships))
            if name == "aa":
                out.update(false_ship_rate_aa=rate, false_ship_rate_aa_mc_se=se, decisions_aa=decisions)
                out["fpr_fixed_aa"], out["fpr_fixed_aa_mc_se"] = _rate(np.array(fixed))
            elif name == "ab":
                out.update(ship_rate_ab=rate, ship_rate_ab_mc_se=se, decisions_ab=decisions)
            else:
                out.setdefault("false_ship_rate_sparse", {})[str(labelled)] = {
                    "rate": rate,
                    "mc_se": se,
                    "decisions": decisions,
                }
    out.update(
        decision_path="write_log → PredictionLog → SQL reduction (DuckDB) → analyze → decide",
        decision_inference=inference,
        decision_users_per_sim=model.n_users,
        decision_effect=float(effect),
        decision_seconds=round(time.perf_counter() - t0, 3),
    )
    return out


def write_log(
    root: str | Path,
    experiment: Any,
    *,
    n_users: int = 2000,
    requests_per_user: float = 5.0,
    label_rate: float = 0.6,
    accuracy: Mapping[str, float] | None = None,
    latency_ms: Mapping[str, float] | None = None,
    confidence: Mapping[str, float] | None = None,
    drop_share: Mapping[str, float] | None = None,
    seed: int | np.random.Generator = 0,
    labelled_users: int | None = None,
) -> dict[str, int]:
    """Write a simulated experiment to a ``PredictionLog`` at ``root`` (predictions and labels).

    Users are hashed into arms by ``experiment.assign``; per-variant ``accuracy``, mean ``latency_ms``
    (log-normal) and mean ``confidence`` default to 0.8, 40 ms and 0.75 for every arm. ``drop_share`` drops
    that share of an arm's users (to simulate a sample-ratio mismatch). ``labelled_users``: only that many
    users per arm get labels (their first prediction always, the others at ``label_rate``). Returns row counts.
    """
    from abkit.log import PredictionLog

    rng = _rng(seed)
    names = list(experiment.variant_names)
    acc = {v: 0.8 for v in names} | dict(accuracy or {})
    lat = {v: 40.0 for v in names} | dict(latency_ms or {})
    conf = {v: 0.75 for v in names} | dict(confidence or {})
    unknown = set(acc) | set(lat) | set(conf) | set(drop_share or {})
    if unknown - set(names):
        raise AbkitError(f"variants {sorted(unknown - set(names))} are not in the experiment {names}")
    ids = np.array([f"user-{i:06d}" for i in range(n_users)])
    arm = np.asarray(experiment.assign(ids))
    keep = arm >= 0
    for v, share in (drop_share or {}).items():
        keep &= ~((arm == names.index(v)) & (rng.random(n_users) < share))
    ids, arm = ids[keep], arm[keep]
    n_req = 1 + rng.poisson(requests_per_user - 1, size=ids.size)
    skill = rng.beta(8 * np.array([acc[v] for v in names])[arm], 8 * (1 - np.array([acc[v] for v in names])[arm]))
    rows = np.repeat(np.arange(ids.size), n_req)
    start = dt.datetime.fromisoformat(experiment.start).replace(tzinfo=dt.UTC)
    first = rng.uniform(0, experiment.duration_days * 0.7, ids.size)
    offs = first[rows] + rng.uniform(0, experiment.duration_days * 0.3, rows.size)
    ts = np.array([start + dt.timedelta(days=float(d)) for d in offs])
    order = np.argsort(offs, kind="stable")
    correct = rng.random(rows.size) < skill[rows]
    pred = np.where(rng.random(rows.size) < 0.5, "pos", "neg")
    truth = np.where(correct, pred, np.where(pred == "pos", "neg", "pos"))
    v_of = np.array(names, dtype=object)[arm[rows]]
    lat_mean = np.array([lat[v] for v in names])[arm[rows]]
    conf_mean = np.array([conf[v] for v in names])[arm[rows]]
    req_ids = np.array([f"req-{i:08d}" for i in range(rows.size)])
    import pandas as pd

    preds = pd.DataFrame(
        {
            "experiment": experiment.key,
            "variant": v_of,
            "unit_id": ids[rows],
            "request_id": req_ids,
            "ts": ts,
            "text": "synthetic text",
            "predicted_label": pred,
            "confidence": np.clip(rng.normal(conf_mean, 0.1), 0.0, 1.0),
            "latency_ms": lat_mean * rng.lognormal(-0.08, 0.4, rows.size),
            "model_name": "synthetic-" + v_of.astype(str),
            "model_version": "1",
        }
    ).iloc[order]
    log = PredictionLog(root)
    with log.writer(experiment.key, names, batch_size=max(len(preds), 1)) as w:
        w.append(preds)
    labelled = rng.random(rows.size) < label_rate
    if labelled_users is not None:
        chosen = _labelled_users(rng, arm[None, :], int(labelled_users))[0]
        opener = np.r_[True, rows[1:] != rows[:-1]]  # each user's first prediction (rows are grouped by user)
        labelled = chosen[rows] & (labelled | opener)
    labels = pd.DataFrame(
        {
            "experiment": experiment.key,
            "request_id": req_ids[labelled],
            "label": truth[labelled],
            "labelled_at": ts[labelled] + dt.timedelta(hours=6),
        }
    )
    if len(labels):
        log.append_labels(labels)
    return {"users": int(ids.size), "predictions": int(rows.size), "labels": int(labelled.sum())}
