"""Prints a line, then dies by the signal named in argv[1] (e.g. SIGSEGV, SIGKILL)."""
import os
import signal
import sys

print("about to die", flush=True)
sig = getattr(signal, sys.argv[1])
if sig != signal.SIGKILL:
    signal.signal(sig, signal.SIG_DFL)
os.kill(os.getpid(), sig)
