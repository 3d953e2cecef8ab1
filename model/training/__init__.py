"""Training tooling: the BasicSR-style recipe (``python -m model.training.train``), the photo data set
(``python -m model.training.data``) and checkpoint averaging (``python -m model.training.average``)."""
