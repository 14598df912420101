"""Maximisers for log-likelihoods that supply their own derivatives."""

from mixedglm.optim.newton import Evaluation, IterationRecord, OptSummary, newton_maximize

__all__ = ["Evaluation", "IterationRecord", "OptSummary", "newton_maximize"]
