"""Experiments: Hydra configs, the training CLI, evaluation, logging, checkpoints and benchmarks."""
