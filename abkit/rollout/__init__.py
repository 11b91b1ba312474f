"""Automatic model replacement: a gated canary ramp, promotion, watching and rollback.

- ``policy``: ``RolloutPolicy`` (validated, built from params) and the gate strategies (``Threshold``);
- ``machine``: the pure state machine ``next_step(state, evidence, policy) -> RolloutDecision``;
- ``evidence``: gate evidence from the analysis of a log (and paired evidence for the shadow stage);
- ``loop``: ``Rollout``, which applies decisions and records them crash-safely in ``abkit.registry``;
- ``lifecycle``: the closed loop on simulated days (``run_lifecycle``, the ``40_rollout`` ``story``), with its
  model ``sources`` (real classifiers on a split ``corpus``, or simulated behaviours) and the per-version drift
  monitor ``watch`` whose alarms feed the drift gate.
"""

from abkit.rollout.loop import Rollout
from abkit.rollout.machine import (
    ACTIONS,
    PHASES,
    Evidence,
    RolloutDecision,
    RolloutState,
    next_step,
    start,
)
from abkit.rollout.policy import (
    GateResult,
    NonInferiority,
    RolloutError,
    RolloutPolicy,
    Threshold,
)

__all__ = [
    "ACTIONS",
    "PHASES",
    "Evidence",
    "GateResult",
    "NonInferiority",
    "Rollout",
    "RolloutDecision",
    "RolloutError",
    "RolloutPolicy",
    "RolloutState",
    "Threshold",
    "next_step",
    "start",
]
