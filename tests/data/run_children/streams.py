"""Writes what a training run writes: lines, \r progress, colours, binary garbage, a very long line,
stderr interleaved, a token; then exits with argv[1] (default 0)."""
import os
import sys
import time

out = sys.stdout
print("plain line one")
print("isatty", sys.stdout.isatty())
try:
    print("size", tuple(os.get_terminal_size(1)))
except OSError:
    print("size none")
print("columns", os.environ.get("COLUMNS"), "unbuffered", os.environ.get("PYTHONUNBUFFERED"))
for i in range(5):
    out.write(f"\rsteps: {i * 25:3d}%|{'#' * i:<4}| {i}/4 [avr_loss=0.1{i}]")
    out.flush()
    time.sleep(0.01)
out.write("\n")
out.write("\x1b[31mred\x1b[0m \x1b[1mbold\x1b[0m\n")
out.flush()
sys.stderr.write("to stderr\n")
sys.stderr.flush()
os.write(1, bytes(range(256)) + b"\xff\xfe\xc3\x28 garbage\n")
os.write(1, b"x" * 300_000 + b" end of a very long line\n")
print("login with --hf_token hf_" + "A1b2C3d4E5f6G7h8I9j0Kk" + " done")
os.write(1, b"split --wandb_api_key ")
time.sleep(0.05)
os.write(1, b"0123456789abcdef0123456789abcdef in two writes\n")
out.write("no newline at the end")
out.flush()
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
