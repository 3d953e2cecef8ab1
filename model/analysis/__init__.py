"""Analysis tooling: the paper's claims measured on an image (``python -m model.analysis.evidence``), router
statistics and checkpoint series (timelines across a training run)."""
