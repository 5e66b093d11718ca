"""Prints its terminal size, waits for SIGWINCH, prints the new size, exits."""
import os
import signal
import sys
import time

def on_winch(signum, frame):
    print("resized", tuple(os.get_terminal_size(1)), flush=True)
    sys.exit(0)

signal.signal(signal.SIGWINCH, on_winch)
print("size", tuple(os.get_terminal_size(1)), flush=True)
time.sleep(20)
print("no SIGWINCH", flush=True)
sys.exit(1)
