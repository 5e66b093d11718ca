"""Prints a line, closes stdout and stderr, keeps working a moment, exits 4."""
import os
import time

os.write(1, b"before closing\n")
os.close(1)
os.close(2)
time.sleep(0.3)
os._exit(4)
