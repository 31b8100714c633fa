"""Analytic Gaussian-mixture prior plugin."""
