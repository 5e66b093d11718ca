"""What sd-scripts does with --mixed_precision=fp16: half-precision weights; on the CPU they meet
float inputs and torch refuses."""
import torch
from accelerate import Accelerator

accelerator = Accelerator()
print("device", accelerator.device, "mixed_precision", accelerator.mixed_precision, flush=True)
weight_dtype = torch.float16 if accelerator.mixed_precision == "fp16" else torch.float32
model = torch.nn.Linear(4, 4).to(accelerator.device, dtype=weight_dtype)
for step in range(3):
    loss = model(torch.ones(2, 4, device=accelerator.device)).pow(2).mean()
    print(f"step {step} loss={loss.item():.4f}", flush=True)
