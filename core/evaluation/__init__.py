"""Evaluation: error metrics, the benchmark protocol and the readers of the benchmark datasets."""
