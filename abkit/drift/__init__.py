"""Drift monitoring: batch detectors (``fit(reference)`` then ``calculate(window) -> DriftResult``), a streaming
change detector (``BernoulliCUSUM``), confidence-based accuracy estimation, and a monitoring pass over a run's
prediction log with a stated false-alarm budget (``monitor_run``). See ``abkit/drift/monitor.py``."""

from abkit.drift._base import BatchDetector, DriftError, Outcome
from abkit.drift.cusum import BernoulliCUSUM
from abkit.drift.domain_classifier import DomainClassifierDrift
from abkit.drift.estimated_accuracy import EstimatedAccuracyDrift
from abkit.drift.ks import KSDrift
from abkit.drift.label_distribution import LabelDistributionDrift
from abkit.drift.mmd import MMDDrift
from abkit.drift.monitor import (
    SIGNALS,
    MonitorConfig,
    MonitoringReport,
    load_alarms,
    monitor_frame,
    monitor_run,
)
from abkit.drift.oov import OOVDrift
from abkit.drift.psi import PSIDrift
from abkit.drift.result import Alarm, DriftResult, DriftResults
from abkit.drift.text_length import TextLengthDrift
from abkit.drift.wasserstein import WassersteinDrift

__all__ = [
    "SIGNALS",
    "Alarm",
    "BatchDetector",
    "BernoulliCUSUM",
    "DomainClassifierDrift",
    "DriftError",
    "DriftResult",
    "DriftResults",
    "EstimatedAccuracyDrift",
    "KSDrift",
    "LabelDistributionDrift",
    "MMDDrift",
    "MonitorConfig",
    "MonitoringReport",
    "OOVDrift",
    "Outcome",
    "PSIDrift",
    "TextLengthDrift",
    "WassersteinDrift",
    "load_alarms",
    "monitor_frame",
    "monitor_run",
]
