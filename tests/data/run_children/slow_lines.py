"""Prints argv[2] lines 50 ms apart, writes `done` to argv[1], exits with argv[3]: for a reader
that goes away early (`| head -1`)."""
import sys
import time

for i in range(int(sys.argv[2])):
    print(f"line {i}", flush=True)
    time.sleep(0.05)
with open(sys.argv[1], "w") as fh:
    fh.write("done")
sys.exit(int(sys.argv[3]))
