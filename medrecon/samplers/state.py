"""The explicit sampler state and the interface every sampler implements."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from medrecon.priors.base import Denoiser

from .problem import InverseProblem
from .transitions import gaussian_like

__all__ = ["Sampler", "State"]


@dataclass
class State:
    """Everything a sampler needs to continue: the iterate ``x`` ``(B, *image)`` (particles: ``(P, B, *image)``),
    the latest clean estimate ``x0`` (same shape), ``log_weights`` ``(B,)`` (zeros for single-particle samplers;
    ``(P, B)`` for particles), sampler-specific tensors in ``aux`` and the number of completed steps ``step``."""

    x: torch.Tensor
    x0: torch.Tensor
    log_weights: torch.Tensor
    step: int = 0
    aux: dict[str, torch.Tensor] = field(default_factory=dict)

    def advance(self, x: torch.Tensor, x0: torch.Tensor, **aux: torch.Tensor) -> State:
        """The next state: ``step + 1``, new ``x`` and ``x0``, ``aux`` entries updated."""
        return replace(self, x=x, x0=x0, step=self.step + 1, aux={**self.aux, **aux})


class Sampler:
    """Base of all samplers: a descending noise grid ``sigmas`` (ending with 0) walked one step at a time.

    Subclasses implement ``step``; ``init`` draws ``x ~ N(0, (sigma_0^2 + init_var) I)``, the VE marginal of a
    prior with per-component variance ``init_var`` (1 reproduces the VP start ``x_T ~ N(0, I)`` exactly).
    ``requires_grad`` tells the driver to enable autograd (samplers that differentiate through the denoiser).
    """

    requires_grad: bool = False
    needs_problem: bool = True
    samples_per_image: int = 1  # denoiser samples per image and call (the particles of the SMC samplers)

    def __init__(self, sigmas: torch.Tensor, init_var: float = 1.0):
        sigmas = torch.as_tensor(sigmas, dtype=torch.float64)
        if sigmas.ndim != 1 or sigmas.numel() < 2 or bool((sigmas[1:] > sigmas[:-1]).any()) or sigmas[-1] != 0:
            raise ValueError("sigmas must be a descending 1D grid ending with 0")
        self.sigmas = [float(s) for s in sigmas]
        self.init_var = init_var

    @property
    def num_steps(self) -> int:
        return len(self.sigmas) - 1

    def init(
        self,
        problem: InverseProblem | None,
        denoiser: Denoiser,
        generator: torch.Generator,
        shape: tuple[int, ...] | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> State:
        """The starting state; the image shape/dtype/device come from ``A^H y`` unless given."""
        template = self._template(problem, shape, dtype, device)
        x = (self.sigmas[0] ** 2 + self.init_var) ** 0.5 * gaussian_like(template, generator)
        return State(x=x, x0=torch.zeros_like(x), log_weights=x.new_zeros(x.shape[0], dtype=x.real.dtype))

    def step(
        self, state: State, problem: InverseProblem | None, denoiser: Denoiser, generator: torch.Generator
    ) -> State:  # pragma: no cover - abstract
        raise NotImplementedError

    def result(self, state: State) -> torch.Tensor:
        """The reconstruction after the last step."""
        return state.x

    def outputs(self, state: State) -> dict[str, torch.Tensor]:
        """Further per-image results after the last step (each with the batch as first dimension), e.g. the
        SMC samplers' uncertainty maps; none by default."""
        return {}

    def _template(self, problem, shape, dtype, device) -> torch.Tensor:
        if problem is None:
            if self.needs_problem:
                raise ValueError(f"{type(self).__name__} needs an InverseProblem")
            if shape is None:
                raise ValueError("an unconditional run needs the sample shape")
            return torch.empty(shape, dtype=dtype or torch.float32, device=device)
        ref = problem.adjoint_y
        if shape is not None and tuple(shape) != tuple(ref.shape):
            raise ValueError(f"shape {tuple(shape)} does not match A^H y {tuple(ref.shape)}")
        return torch.empty_like(ref)

    def _require(self, problem: InverseProblem | None) -> InverseProblem:
        if problem is None:
            raise ValueError(f"{type(self).__name__} needs an InverseProblem")
        return problem
