"""Classical reconstructions (zero-filled, CG-SENSE, L1-wavelet); import ``medrecon.baselines.mri``."""
