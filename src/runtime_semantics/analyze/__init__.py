"""Evaluation results -> per-cell summaries, paired tests, figures and tables (the `analyze` stage)."""
