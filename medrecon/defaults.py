"""One home for every default: sampler settings, classical baselines, coil maps and the noise-estimation rule.

Job components (``medrecon.jobs``), ``medrecon bench``, the notebook and the docs read these values; nothing else
restates them. Each value was chosen on the validation split (``medrecon.jobs.image_sets``: MNI152 slices outside
the reported band; real head-CT slices 0-53 of the InVesalius "Cranium" example), never on the images the
benchmarks report; ``docs/benchmarks.md`` records the search. The ultrasound values were chosen on simulated
validation frames (``medrecon.bench.ultrasound.VALIDATION_SEED``), never on the benchmark's test frames.
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ACTIVE",
    "CGLS",
    "CG_SENSE",
    "COIL_MAPS",
    "DDS",
    "DDS_3D",
    "DDS_BY_MODALITY",
    "DIFFUSION_MBIR",
    "DPS",
    "JOINT_DEHAZING",
    "L1_WAVELET",
    "PC",
    "RED_DIFF",
    "SMC",
    "TV",
    "TV_3D",
    "ActiveDefaults",
    "CgSenseDefaults",
    "CglsDefaults",
    "CoilMapDefaults",
    "DdsDefaults",
    "DiffusionMbirDefaults",
    "DpsDefaults",
    "JointDehazingDefaults",
    "L1WaveletDefaults",
    "PcDefaults",
    "RedDiffDefaults",
    "SmcDefaults",
    "Tv3dDefaults",
    "TvDefaults",
    "VolumeDefaults",
    "dds_for",
]


@dataclass(frozen=True)
class DdsDefaults:
    """DDS: ``steps`` network calls on a Karras grid over the prior's trained noise range, DDS noise ``eta``,
    ``cg_iters`` CG steps of the noise-aware proximal data consistency with weight ``lam``, or a fixed proximal
    weight ``gamma`` instead (0: the early-stopped normal equations, exact on a line mask); ``clip`` clamps each
    Tweedie estimate to the prior's data range; ``start`` is ``"noise"`` or the baseline whose reconstruction the
    run starts from, diffused to ``start_sigma`` (prior units); ``chains`` independent chains per slice are averaged
    (``steps x chains`` network evaluations per slice)."""

    steps: int = 50
    eta: float = 0.85
    cg_iters: int = 5
    lam: float = 1.0
    gamma: float | None = None
    clip: bool = False
    start: str = "noise"
    start_sigma: float = 0.5
    chains: int = 1


@dataclass(frozen=True)
class DpsDefaults:
    """DPS: ``steps`` ancestral steps, ``guidance`` (``paper``: the published ``zeta / ||y - A x0_hat||`` step, stable
    with the shipped priors; ``likelihood``: the noise-aware step, exact for Gaussian priors but unstable at
    ``zeta = 1`` with them), step ``zeta``, Tweedie weight ``lam`` and CG iterations of the likelihood guidance."""

    steps: int = 500
    zeta: float = 1.0
    guidance: str = "paper"
    lam: float = 1.0
    cg_iters: int = 5


@dataclass(frozen=True)
class JointDehazingDefaults:
    """Joint two-prior dehazing (``medrecon.samplers.joint_dehazing``): ``steps`` on a Karras grid from
    ``sigma_start`` (the measurement-started partial diffusion) to ``sigma_min``, gradient steps ``lam`` (tissue)
    and ``kappa`` (haze), ``iters`` per step, ancestral noise ``eta``, and the haze weight ``gamma`` of the model
    ``y = x + gamma h``. The dehazing paper's settings; not tuned."""

    steps: int = 50
    sigma_start: float = 0.5
    sigma_min: float = 0.002
    lam: float = 0.5
    kappa: float = 0.5
    iters: int = 1
    eta: float = 1.0
    gamma: float = 0.5


@dataclass(frozen=True)
class PcDefaults:
    """Predictor-corrector over ``steps`` noise levels with ``corrector_steps`` Langevin steps (``snr``) and the
    proximal data consistency (``cg_iters``, ``lam``)."""

    steps: int = 250
    snr: float = 0.16
    corrector_steps: int = 1
    cg_iters: int = 5
    lam: float = 1.0


@dataclass(frozen=True)
class RedDiffDefaults:
    """RED-Diff: ``steps`` noise levels, Adam learning rate ``lr`` (prior units), regulariser ``lam``."""

    steps: int = 100
    lr: float = 0.02
    lam: float = 1.0
    weighting: str = "snr"


@dataclass(frozen=True)
class SmcDefaults:
    """SMC ensembles: ``particles`` per slice over ``steps`` levels, resampling below normalised ESS
    ``ess_threshold``, Tweedie-twist weight ``lam``, ``cg_iters`` CG steps of the twist's measurement-space solve
    (any fixed count keeps the weights exact: the truncated solve is the twist; 5 keeps the step within 1.2x of the
    network on 8-coil MRI),
    credible ``level`` of the interval maps; AFDPS's ODE variant with ``corrector_steps`` Langevin steps.
    ``ess_floor`` tempers each step's weight increment so that it alone keeps the normalised ESS above the floor
    (0: the exact weights). ``ess_floor`` and ``steps`` were chosen on prior draws of the validation split
    (``medrecon bench ensembles --calibration --calibration-split validation``, 2 images, 16 particles x 50
    levels): a floor of 1 (independent guided chains) covered 0.889 / 0.897 of the pixels with its 90% intervals on
    MRI / CT (0.882 is what exact draws reach with 16 particles), a floor of 0.9 (weights tempered to about 0.03,
    then resampled) 0.688 / 0.664. ``lam = 2`` (a twist half as wide, so a stronger pull towards the data) kept
    the coverage in range (0.879 / 0.925) and raised the posterior-mean PSNR by 0.7 / 1.1 dB over ``lam = 1``;
    ``tds`` shares these values."""

    particles: int = 16
    steps: int = 50
    ess_threshold: float = 0.5
    ess_floor: float = 1.0
    lam: float = 2.0
    cg_iters: int = 5
    level: float = 0.9
    corrector_steps: int = 1


@dataclass(frozen=True)
class L1WaveletDefaults:
    """L1-wavelet FISTA: weight ``lamda`` relative to max |A^H y|, ``iters`` iterations."""

    lamda: float = 1e-4
    iters: int = 100


@dataclass(frozen=True)
class CgSenseDefaults:
    """CG-SENSE: Tikhonov ``damping`` relative to ||A||^2, ``iters`` iterations."""

    damping: float = 1e-3
    iters: int = 30


@dataclass(frozen=True)
class TvDefaults:
    """TV (Chambolle-Pock): weight ``lam_rel`` relative to the image scale, ``iters`` iterations."""

    lam_rel: float = 3e-2
    iters: int = 300


@dataclass(frozen=True)
class CglsDefaults:
    """CGLS: ``iters`` CG iterations on the normal equations."""

    iters: int = 20


@dataclass(frozen=True)
class CoilMapDefaults:
    """Coil maps of multi-coil MRI jobs: ``method`` (``lowres`` or ``espirit``), ESPIRiT's kernel side and its
    calibration rows along the readout."""

    method: str = "espirit"
    espirit_kernel: int = 6
    calib_height: int = 64


@dataclass(frozen=True)
class ActiveDefaults:
    """Active subsampling (``medrecon plan-mask``): ``chains`` particles per image (chains of the job's sampler),
    ``per_round`` acquisitions per round over the first ``stop_fraction`` of the sampler's steps, the
    Gaussian-mixture ``sign`` of the kernel at its automatic width, the greedy batch's ``diversity`` penalty and
    ``width`` (candidate indices; 0: the spacing of a uniform mask of the budget), and ``candidate_views`` CT
    angles over the arc."""

    chains: int = 6
    per_round: int = 1
    stop_fraction: float = 0.5
    sign: str = "entropy"
    diversity: float = 0.5  # +1.2 dB at 4x lines and +0.7 dB at 4x points over 0 on the validation images
    width: float = 0.0
    candidate_views: int = 144


@dataclass(frozen=True)
class VolumeDefaults:
    """DDS for volumes (``sampler.kind = "dds_3d"``): ADMM penalty ``rho``, TV weight ``tv`` along z and
    ``tv_xy`` within each slice (in the prior's units), ``admm_iters`` per diffusion step and ``network_batch``
    slices per denoiser call. ``rho`` and ``network_batch`` are DDS's published values; ``tv`` was chosen on 8
    contiguous head-CT validation slices (Cranium 32-39) at 8 and 16 views from 0.04 (DDS's value in its own units)
    to 4; ``tv_xy`` (0.25 / 1 / 4) and ``admm_iters`` (1 / 3 / 6) on the 16-slice validation volume (Cranium
    24-39) at 8 and 16 views, confirmed at 32 (docs/benchmarks.md): the in-plane term with 3 ADMM iterations adds
    +0.8 dB (8 views) and +0.6 dB (16) over z alone with one."""

    rho: float = 10.0
    tv: float = 2.0
    admm_iters: int = 3
    network_batch: int = 20
    tv_xy: float = 1.0


@dataclass(frozen=True)
class DiffusionMbirDefaults:
    """DiffusionMBIR (``sampler.kind = "diffusion_mbir"``): ``steps`` noise levels with ``corrector_steps``
    Langevin steps (``snr``) of the prior's score, then ``admm_iters`` ADMM iterations of ``cg_iters`` CG steps
    with penalty ``rho`` and TV weight ``tv`` along z on the noisy iterate, ``network_batch`` slices per denoiser
    call, and a final normalised back-projection step. The reference's values (its 8-view CT setting), except
    ``steps``: 2000 in the reference (4000 network calls), here the predictor-corrector's 250."""

    steps: int = 250
    snr: float = 0.16
    corrector_steps: int = 1
    rho: float = 10.0
    tv: float = 0.04
    admm_iters: int = 1
    cg_iters: int = 1
    network_batch: int = 12
    final_consistency: bool = True
    tv_xy: float = 0.0


@dataclass(frozen=True)
class Tv3dDefaults:
    """3D TV of a CT volume (``run.baselines = ["tv_3d"]``): weight ``lam_rel`` relative to the volume's scale,
    ``z_weight`` of the difference between neighbouring slices against the in-plane ones, ``iters`` PDHG
    iterations. ``lam_rel`` and ``z_weight`` chosen on the Cranium validation volume (slices 24-39, 128 x 128:
    1.9 mm pixels, 1.5 mm slices) at 8 / 16 / 32 views from (0.03, 1), (0.03, 2), (0.02, 2), (0.03, 4), by the
    mean volume PSNR (docs/benchmarks.md)."""

    lam_rel: float = 2e-2
    z_weight: float = 2.0
    iters: int = 300


ACTIVE = ActiveDefaults()
DDS_3D = VolumeDefaults()
DIFFUSION_MBIR = DiffusionMbirDefaults()
COIL_MAPS = CoilMapDefaults()
DDS_BY_MODALITY = {
    "mri": DdsDefaults(eta=1.0, lam=1.0),
    # CT starts from TV diffused to 0.2 (chosen on Cranium slices 8, 11, 17, 20 at 256x256 from 0.1 / 0.2 / 0.3 / 0.5
    # and the start from noise: 20.72 / 20.79 / 20.68 / 20.30 / 19.45 dB at 8 views; 16 views 26.56 vs 25.34) and
    # averages 2 chains of 25 steps (50 network evaluations a slice; same slices, ct_head_native: 20.98 against one
    # chain of 50 steps 20.79 at 8 views, 26.78 against 26.57 at 16; 3 x 25: 21.04; 4 x 10: 20.82; 1 x 25: 20.69)
    "ct": DdsDefaults(steps=25, chains=2, eta=0.85, lam=0.3, clip=True, start="tv", start_sigma=0.2),
    "ultrasound": DdsDefaults(eta=1.0, gamma=0.0, clip=True),  # scan-line completion of companded RF
}
DDS = DDS_BY_MODALITY["mri"]
DPS = DpsDefaults()
JOINT_DEHAZING = JointDehazingDefaults()
PC = PcDefaults()
RED_DIFF = RedDiffDefaults()
SMC = SmcDefaults()
L1_WAVELET = L1WaveletDefaults()
CG_SENSE = CgSenseDefaults()
TV = TvDefaults()
TV_3D = Tv3dDefaults()
CGLS = CglsDefaults()


def dds_for(modality: str | None) -> DdsDefaults:
    """The DDS defaults for a prior of ``modality`` (``"mri"``, ``"ct"``, ``"ultrasound"``; others get the MRI
    values)."""
    return DDS_BY_MODALITY.get(modality or "mri", DDS)
