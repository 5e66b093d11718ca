"""A progress bar whose loss turns NaN at step 3, then keeps "training" for a minute."""
import sys
import time

for step in range(600):
    loss = "nan" if step >= 3 else f"0.{step}"
    sys.stdout.write(f"\rsteps: {step}/600 [00:01<00:10, avr_loss={loss}]")
    sys.stdout.flush()
    time.sleep(0.1)
