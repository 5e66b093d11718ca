"""Leaves a zombie in its process group that nobody reaps (as in a container whose PID 1 reaps
nothing): a helper forks a child that exits at once, then leaves the group and sleeps without
waiting for it. Writes the helper's pid to argv[1] and exits 0."""
import os
import sys
import time

helper = os.fork()
if helper == 0:
    os.close(1)
    os.close(2)
    if os.fork() == 0:
        os._exit(0)  # stays a zombie in our group: its parent never waits
    os.setpgid(0, 0)  # the helper itself leaves the group
    time.sleep(30)
    os._exit(0)
with open(sys.argv[1], "w") as fh:
    fh.write(str(helper))
time.sleep(0.3)
print("left a zombie behind", flush=True)
