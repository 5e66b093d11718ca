"""The Python that will train: the probe and what it reports (packages, requirements, torch wheels, nvidia-smi, VRAM)."""
