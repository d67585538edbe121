"""Training of 2D diffusion priors (``medrecon train-prior``), apart from the runtime prior interface.

Modules (import them directly; nothing heavy is imported here):
  * ``train``: the resumable training loop and the ``train-prior`` command.
  * ``config``: the training TOML schema, defaults and validation.
  * ``data``: training-image readers (.npy, NIfTI, fastMRI HDF5, built-in sets) and on-the-fly augmentation.
  * ``datasets``: the shipped priors' training and held-out image generators.
  * ``prepare``: ``python -m medrecon.training.prepare`` writes those arrays and their manifests.
  * ``evaluate``: held-out denoising PSNR and unconditional sample grids (used by training and ``bench prior``).

``training`` imports ``priors``, ``samplers`` (one Heun sampler for previews), ``operators`` and the shared
``medrecon.schedules`` / ``medrecon.files`` helpers; ``priors`` and ``samplers`` never import ``training``.
"""
