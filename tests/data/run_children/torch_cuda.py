"""Asks a CPU-only torch for CUDA, as a training script on a CPU wheel does."""
import torch

print("torch", torch.__version__, flush=True)
torch.zeros(1).cuda()
