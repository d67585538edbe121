"""Active subsampling: scoring candidate acquisitions (k-space lines, CT views, scan lines) by the disagreement of
posterior particles in measurement space, and choosing them greedily in batches."""
from .scores import disagreement, greedy_batch, mixture_entropy_scores

__all__ = ["disagreement", "greedy_batch", "mixture_entropy_scores"]
