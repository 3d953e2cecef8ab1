"""Evaluation tooling: degradations and metrics with BasicSR conventions, benchmark folders, PSNR/SSIM of a
checkpoint (``python -m model.evaluation.evaluate``), latency (``.bench``) and MACs (``.profile``)."""
