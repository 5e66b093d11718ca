"""Model files: the safetensors header, what kind of model a checkpoint is, how it fits the script."""
