"""Starts a grandchild in the same process group (like DataLoader workers), writes both pids to
argv[1], prints `ready`, then sleeps. argv[2] == "ignore-int" ignores SIGINT (and so does the
grandchild); "exit" exits 0 right away leaving the grandchild behind."""
import os
import signal
import subprocess
import sys
import time

mode = sys.argv[2] if len(sys.argv) > 2 else ""
if mode == "ignore-int":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
grand = subprocess.Popen([sys.executable, "-c", "import signal,time\n"
                          + ("signal.signal(signal.SIGINT, signal.SIG_IGN)\n" if mode == "ignore-int" else "")
                          + "time.sleep(60)"])
try:  # the test sends SIGINT as soon as the pids are written
    with open(sys.argv[1], "w") as fh:
        fh.write(f"{os.getpid()} {grand.pid}")
    print("ready", flush=True)
    if mode == "exit":
        sys.exit(0)
    time.sleep(60)
except KeyboardInterrupt:
    print("child got KeyboardInterrupt", flush=True)
    grand.terminate()
    raise
