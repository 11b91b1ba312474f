"""CUPED in the analysis: each user's pre-period metric as the covariate of the same metric in the test.

The pre-period is the time before the test when the champion served every user; the log holds it as its own
experiment, ``pre_period_key(key)``, whose single variant is the control.

>>> pre_period_key("sentiment-ab")
'sentiment-ab.pre'
"""

from __future__ import annotations

from abkit.errors import AbkitError

PRE_SUFFIX = ".pre"


def pre_period_key(experiment: str) -> str:
    """The log key of ``experiment``'s pre-period."""
    key = f"{experiment}{PRE_SUFFIX}"
    if len(key) > 128:
        raise AbkitError(f"experiment key {experiment!r} is too long for a pre-period ({key!r} > 128 characters); "
                         "shorten the key to 124 characters or fewer")
    return key
