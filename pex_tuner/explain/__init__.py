"""Distill-HTE: explanations of CATE models as honest segments with effect intervals."""

from pex_tuner.explain.distill import DistillHTE, explain
from pex_tuner.explain.estimates import segment_effect

__all__ = ["DistillHTE", "explain", "segment_effect"]
