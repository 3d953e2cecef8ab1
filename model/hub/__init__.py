"""Where checkpoints come from: the official weights on the Hugging Face Hub
(``python -m model.hub.download``) and the local registry of weight files with their manifests."""
