"""Active subsampling: plan acquisitions (k-space lines or points, CT views) while the posterior is sampled, by
the disagreement of posterior particles about every candidate measurement (ADS, reference section 8)."""
from .candidates import Candidates, KSpaceLines, KSpacePoints, ProjectionViews
from .planner import Acquire, Plan, Schedule, acquisition_schedule, plan, retrospective
from .scores import auto_kernel_variance, disagreement, greedy_batch, kernel_scores, mixture_entropy_scores

__all__ = [
    "Acquire",
    "Candidates",
    "KSpaceLines",
    "KSpacePoints",
    "Plan",
    "ProjectionViews",
    "Schedule",
    "acquisition_schedule",
    "auto_kernel_variance",
    "disagreement",
    "greedy_batch",
    "kernel_scores",
    "mixture_entropy_scores",
    "plan",
    "retrospective",
]
