"""Scoring classifiers and comparing synthetic with real ECG."""
