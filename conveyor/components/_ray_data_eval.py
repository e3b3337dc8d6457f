"""The Evaluator's data-parallel pass on a Ray cluster (see :mod:`conveyor.io.distributed`):
each Ray Data block of a split is predicted by the candidate (and the baseline) model on a
worker, which loads the bundles from their URIs once per worker process and sends back
only its per-slice sums; they are merged here by slice key, with the local pass's merge.

The merged sums hold every score of the split when ROC or PR AUC is asked for (those are
exact). A ``predict_fn`` travels to the workers pickled; one that cannot be pickled keeps
the evaluation in this process, and the log says why.

Example::

    on_cluster = EvalOnCluster()
    evaluate(examples, model, config, split_pass=on_cluster)
    record_engine(evaluation, on_cluster.splits)
"""

from __future__ import annotations

import functools
import logging

from conveyor.evaluation.partial import EvalPartial
from conveyor.evaluation.scoring import EvalPlan
from conveyor.io.distributed import map_reduce, use_ray_data
from conveyor.io.examples import ExamplesSource

__all__ = ["EvalOnCluster"]

logger = logging.getLogger(__name__)


class EvalOnCluster:
    """A ``split_pass`` for :func:`conveyor.evaluation.evaluate`: a split on the cluster
    when it pays, its name then joins :attr:`splits`."""

    def __init__(self) -> None:
        self.splits: list[str] = []

    def __call__(self, plan: EvalPlan, source: ExamplesSource, split: str) -> EvalPartial | None:
        if not use_ray_data(source, split, "Evaluator", also=list(plan.models.values())):
            return None
        why = _unpicklable(plan)
        if why:
            logger.info("Evaluator, split %r: in this process (%s)", split, why)
            return None
        create = functools.partial(plan.create, split)
        partial = map_reduce(source, split, create, plan.add, EvalPartial.merge,
                             columns=plan.columns)  # fmt: skip
        self.splits.append(split)
        return partial


def _unpicklable(plan: EvalPlan) -> str:
    """Why ``plan`` (its ``predict_fn``, mostly) cannot go to the workers; "" when it can."""
    from ray import cloudpickle

    try:
        cloudpickle.dumps(plan)
    except Exception as exc:  # any pickling failure: cloudpickle raises many kinds
        name = getattr(plan.predict_fn, "__name__", "predict_fn")
        return f"predict_fn {name} cannot be pickled for the workers: {exc}"
    return ""
