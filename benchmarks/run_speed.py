"""How much `lora-doctor run` costs around a training command. Prints numbers; run from the repo root:

    .venv/bin/python benchmarks/run_speed.py [--mb 500] [--repeat 3]

1. Throughput: a child writing N MB, direct vs through the wrapper, stdout to /dev/null in both
   (the wrapper also writes its redacted log to a file). Block writes (the worst case for the
   wrapper) and print() lines (what training output looks like).
2. CPU: a CPU-bound child printing a progress line every 10 ms; the wrapper's own CPU time
   (getrusage SELF of a process running the CLI in-process) vs the child's (RUSAGE_CHILDREN).
3. Start-up: time from just before starting `lora-doctor run --force -- sh -c 'date +%s.%N'`
   to the moment the child prints its clock, with every check enabled (they run alongside with
   --force); the same for `sh -c date` started directly, as the floor.
Wrapper runs use `--only args --python true` in 1 and 2 so the numbers are the streaming's, not
the probe's (the probe imports torch in the target interpreter, in parallel).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LORA_DOCTOR = str(Path(sys.executable).parent / "lora-doctor")
TRUE = shutil.which("true") or "/bin/true"

BLOCKS = "import os,sys\nb=b'x'*65535+b'\\n'\nfor _ in range(int(sys.argv[1])*16): os.write(1,b)\n"
LINES = ("import sys\nline='steps: 50%|#####     | 500/1000 [01:00<01:00, avr_loss=0.0912] '*1+'x'*40\n"
         "w=sys.stdout.write\nfor _ in range(int(sys.argv[1])*(1<<20)//len(line)): w(line+'\\n')\n")
CPU = ("import sys,time\nend=time.time()+float(sys.argv[1]);i=0;t=time.time()\n"
       "while time.time()<end:\n i+=1\n if time.time()-t>0.01:\n  t=time.time();sys.stdout.write(f'\\rsteps: {i} avr_loss=0.1');sys.stdout.flush()\n")


def timed(argv, env=None, dest=os.devnull) -> float:
    started = time.perf_counter()
    with open(dest, "wb") as out:
        subprocess.run(argv, stdout=out, stderr=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - started


def wrapper(log: str, *command: str) -> list[str]:
    return [LORA_DOCTOR, "run", "--offline", "--force", "--only", "args", "--python", TRUE, "--log", log,
            "--", *command]


def throughput(mb: int, repeat: int) -> None:
    unbuffered = dict(os.environ, PYTHONUNBUFFERED="1")  # what the wrapper gives its child
    with tempfile.TemporaryDirectory() as tmp:
        log = os.path.join(tmp, "train.log")
        for dest in (os.devnull, os.path.join(tmp, "stdout.bin")):
            for name, code in (("block writes", BLOCKS), ("print() lines", LINES)):
                child = [sys.executable, "-c", code, str(mb)]
                times: dict[str, list[float]] = {"direct": [], "direct+unbuffered": [], "wrapped": []}
                for _ in range(repeat):  # side by side, alternating
                    times["direct"].append(timed(child, dest=dest))
                    times["direct+unbuffered"].append(timed(child, unbuffered, dest=dest))
                    times["wrapped"].append(timed(wrapper(log, *child), dest=dest))
                d, u, w = (statistics.median(times[k]) for k in ("direct", "direct+unbuffered", "wrapped"))
                print(f"{mb} MB, {name}, stdout to {'/dev/null' if dest == os.devnull else 'a file'}: direct {d:.2f} s, "
                      f"direct with PYTHONUNBUFFERED=1 {u:.2f} s, through lora-doctor run {w:.2f} s "
                      f"(x{w / d:.2f} / x{w / u:.2f}; log {os.path.getsize(log) >> 20} MiB)")


def cpu_share(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        code = ("import resource,sys\nfrom lora_doctor.cli import main\nrc=main(sys.argv[1:])\n"
                "s=resource.getrusage(resource.RUSAGE_SELF);c=resource.getrusage(resource.RUSAGE_CHILDREN)\n"
                "sys.stderr.write(f'@@ {s.ru_utime+s.ru_stime} {c.ru_utime+c.ru_stime}\\n')\n")
        argv = [sys.executable, "-c", code, *wrapper(os.path.join(tmp, "l.log"), sys.executable, "-c", CPU,
                                                     str(seconds))[1:]]
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
        line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("@@ "))
        own, child = map(float, line.split()[1:])
        streaming = _streaming_only(seconds)
        print(f"CPU-bound child ({seconds:.0f} s, a progress line every 10 ms): child CPU {child:.2f} s, "
              f"wrapper CPU {own:.3f} s in all = {100 * own / child:.1f}% (start-up, imports and checks "
              f"included); the streaming loop alone {streaming[0]:.3f} s = {100 * streaming[0] / streaming[1]:.2f}%")


def _streaming_only(seconds: float) -> tuple[float, float]:
    """The Runner loop in this process: its CPU vs the child's."""
    import resource

    sys.path.insert(0, str(ROOT))
    from lora_doctor.runner import Runner

    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "wb") as null:
        before = resource.getrusage(resource.RUSAGE_SELF)
        before_c = resource.getrusage(resource.RUSAGE_CHILDREN)
        Runner([sys.executable, "-c", CPU, str(seconds)], log_path=os.path.join(tmp, "l.log"),
               on_line=lambda line: None, use_pty=False, stdout_fd=null.fileno()).run()
        after = resource.getrusage(resource.RUSAGE_SELF)
        after_c = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    child = (after_c.ru_utime + after_c.ru_stime) - (before_c.ru_utime + before_c.ru_stime)
    return own, child


def startup(repeat: int) -> None:
    clock = ["sh", "-c", "date +%s.%N"]
    with tempfile.TemporaryDirectory() as tmp:
        results = {"direct": [], "lora-doctor run --force": []}
        for _ in range(repeat):
            for name, argv in (("direct", clock),
                               ("lora-doctor run --force",
                                [LORA_DOCTOR, "run", "--force", "--offline", "--log", os.path.join(tmp, "s.log"),
                                 "--", *clock])):
                started = time.time()
                out = subprocess.run(argv, capture_output=True, text=True, cwd=tmp).stdout
                results[name].append(float(out.strip().splitlines()[0]) - started)
        for name, values in results.items():
            print(f"start-up to the child's first instruction, {name}: median {1000 * statistics.median(values):.0f} ms "
                  f"(min {1000 * min(values):.0f}, max {1000 * max(values):.0f}, n={len(values)})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=500)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--cpu-seconds", type=float, default=5.0)
    args = p.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    startup(max(5, args.repeat))
    throughput(args.mb, args.repeat)
    cpu_share(args.cpu_seconds)


if __name__ == "__main__":
    main()
