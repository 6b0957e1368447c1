"""Synthetic scenes with exact ground truth: rendering, simulated predictions and quality figures."""
