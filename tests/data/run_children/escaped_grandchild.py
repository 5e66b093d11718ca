"""Starts a grandchild in a session of its own (out of our process group, a daemon) that keeps
our stdout open, writes its pid to argv[1], and exits 0 at once."""
import subprocess
import sys

grand = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
with open(sys.argv[1], "w") as fh:
    fh.write(str(grand.pid))
print("parent done", flush=True)
