"""abkit.stats: pure, vectorized statistics on per-arm sufficient statistics (no rows, no files)."""

from abkit.stats.aggregates import ArmStats, CupedStats, Moments, moments_from_sums, proportion_moments
from abkit.stats.bayesian import BayesResult, bayes_test, beta_chance_to_beat, normal_posterior
from abkit.stats.config import config_context, get_config, set_config
from abkit.stats.frequentist import (
    TestResult,
    chi2_contingency_pvalue,
    cuped_ttest,
    proportions_exact,
    proportions_ztest,
    ttest,
)
from abkit.stats.multiple import MultipleResult, adjust, bh_threshold
from abkit.stats.noninferiority import MarginResult, effect_margin_test, margin_test
from abkit.stats.paired import McNemarResult, PairedResult, mcnemar_exact, paired_difference
from abkit.stats.power import days_to_decision, mde, power, sample_size
from abkit.stats.quantiles import quantile_difference, quantile_rank_interval
from abkit.stats.sequential import (
    GroupSequentialBounds,
    SequentialResult,
    confidence_sequence,
    group_sequential_bounds,
    msprt_p_values,
    spending,
)
from abkit.stats.smooth import VectorStats
from abkit.stats.srm import SRMResult, check_weights, srm_test

__all__ = [
    "ArmStats",
    "BayesResult",
    "CupedStats",
    "GroupSequentialBounds",
    "MarginResult",
    "McNemarResult",
    "Moments",
    "MultipleResult",
    "PairedResult",
    "SRMResult",
    "SequentialResult",
    "TestResult",
    "VectorStats",
    "adjust",
    "bayes_test",
    "beta_chance_to_beat",
    "bh_threshold",
    "check_weights",
    "chi2_contingency_pvalue",
    "confidence_sequence",
    "config_context",
    "cuped_ttest",
    "days_to_decision",
    "effect_margin_test",
    "get_config",
    "group_sequential_bounds",
    "margin_test",
    "mcnemar_exact",
    "mde",
    "moments_from_sums",
    "msprt_p_values",
    "normal_posterior",
    "paired_difference",
    "power",
    "proportion_moments",
    "proportions_exact",
    "proportions_ztest",
    "quantile_difference",
    "quantile_rank_interval",
    "sample_size",
    "set_config",
    "spending",
    "srm_test",
    "ttest",
]
