"""What `lora-doctor run` costs around a training command, measured side by side. From the repo root:

    .venv/bin/python benchmarks/run_speed.py [--mb 500] [--repeat 5] [--cpu-seconds 10] [--only redaction]

1. Start-up: from just before starting `lora-doctor run --force -- sh -c 'date +%s.%N'` (every
   check enabled: with --force they run alongside) to the clock the child prints; `sh -c date`
   started directly is the floor.
2. Throughput: a child writing N MB (64 KiB blocks, and print() lines as training output looks),
   run directly and through the wrapper with stdout going to the SAME place: /dev/null, then a
   file. The direct run is timed as the user runs it and with PYTHONUNBUFFERED=1 (which the
   wrapper sets for its child). The wrapper also writes its redacted log, a new file per run as
   by default (deleted between runs, untimed), next to the stdout file.
3. Redaction, worst case: every line of the child's output holds an `hf_…` token (redacted in
   the log), or an `hf_…` word that only looks like one (`hf_hub_download`: every pre-check says
   "maybe"), or a `--wandb_api_key V` option; N MB to a file, direct against wrapped; and the log
   writer alone in this process (MB/s), without the child's and the pipe's share.
4. CPU: a CPU-bound child printing a progress line every 10 ms. The wrapper's CPU (getrusage of the
   lora-doctor process, plus the probe subprocess where the checks run one) is split into the
   fixed part (the same command around `true`) and the streaming part (the rest), each compared
   with the child's own CPU time (which the child reports itself).
Medians of --repeat runs, the runs of one comparison alternating.
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

LORA_DOCTOR = str(Path(sys.executable).parent / "lora-doctor")
TRUE = shutil.which("true") or "/bin/true"
OWN_CHECKS = ["--only", "args", "--python", TRUE]  # the wrapper's own cost, without the probe

BLOCKS = "import os,sys\nb=b'x'*65535+b'\\n'\nfor _ in range(int(sys.argv[1])*16): os.write(1,b)\n"
LINES = ("import sys\nline='steps: 50%|#####     | 500/1000 [01:00<01:00, avr_loss=0.0912] '*1+'x'*40\n"
         "w=sys.stdout.write\nfor _ in range(int(sys.argv[1])*(1<<20)//len(line)): w(line+'\\n')\n")
TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh"  # hf_ + 34 letters, like a real token
WORST = {  # one line as the child prints it, repeated: each line holds something redaction must look at
    "an hf_ token on every line": f"step 500/1000 avr_loss=0.0912 login {TOKEN} ok",
    "an hf_ word on every line": "step 500/1000 avr_loss=0.0912 hf_hub_download(repo_id=x) ok",
    "--wandb_api_key V on every line": "step 500/1000 avr_loss=0.0912 --wandb_api_key 0123456789abcdef0123 ok",
}
# the same lines in 64 KiB writes (the wrapper's own cost shows), or one print() each (training output)
WORST_CHILD = ("import sys\nline=sys.argv[2]+' '+'x'*40+'\\n'\nblock=line*(65536//len(line))\n"
               "w=sys.stdout.buffer.write\nfor _ in range(int(sys.argv[1])*(1<<20)//len(block)): w(block.encode())\n")
WORST_LINES = ("import sys\nline=sys.argv[2]+' '+'x'*40\n"
               "for _ in range(int(sys.argv[1])*(1<<20)//(len(line)+1)): print(line)\n")
CPU = ("import resource,sys,time\nend=time.time()+float(sys.argv[1]);i=0;t=time.time()\n"
       "while time.time()<end:\n i+=1\n if time.time()-t>0.01:\n"
       "  t=time.time();sys.stdout.write(f'\\rsteps: {i} avr_loss=0.1');sys.stdout.flush()\n"
       "r=resource.getrusage(resource.RUSAGE_SELF)\nopen(sys.argv[2],'w').write(str(r.ru_utime+r.ru_stime))\n")
# runs the CLI in this process and reports its own CPU and its children's (the child, the probe)
MEASURE = ("import resource,sys\nfrom lora_doctor.cli import main\nrc=main(sys.argv[1:])\n"
           "s=resource.getrusage(resource.RUSAGE_SELF);c=resource.getrusage(resource.RUSAGE_CHILDREN)\n"
           "sys.stderr.write(f'@@ {s.ru_utime+s.ru_stime} {c.ru_utime+c.ru_stime}\\n')\n")


def median_ms(values: list[float]) -> str:
    return f"median {1000 * statistics.median(values):.0f} ms (min {1000 * min(values):.0f}, n={len(values)})"


def startup(repeat: int) -> None:
    clock = ["sh", "-c", "date +%s.%N"]
    with tempfile.TemporaryDirectory() as tmp:
        results: dict[str, list[float]] = {"sh started directly": [], "lora-doctor run --force": []}
        for i in range(repeat):
            for name, argv in (("sh started directly", clock),
                               ("lora-doctor run --force",
                                [LORA_DOCTOR, "run", "--force", "--offline", "--log", f"{tmp}/s{i}.log", "--", *clock])):
                started = time.time()
                out = subprocess.run(argv, capture_output=True, text=True, cwd=tmp).stdout
                results[name].append(float(out.strip().splitlines()[0]) - started)
        for name, values in results.items():
            print(f"start-up to the child's first instruction, {name}: {median_ms(values)}")


def _timed(argv, dest: str, env=None) -> float:
    started = time.perf_counter()
    with open(dest, "wb") as out:
        subprocess.run(argv, stdout=out, stderr=subprocess.DEVNULL, env=env, check=True)
    return time.perf_counter() - started


def throughput(mb: int, repeat: int) -> None:
    unbuffered = dict(os.environ, PYTHONUNBUFFERED="1")
    with tempfile.TemporaryDirectory() as tmp:  # (here /tmp is on the disk, not a tmpfs)
        log = os.path.join(tmp, "train.log")
        for dest, where in ((os.devnull, "/dev/null"), (os.path.join(tmp, "stdout.bin"), "a file")):
            for name, code in (("64 KiB blocks", BLOCKS), ("print() lines", LINES)):
                child = [sys.executable, "-c", code, str(mb)]
                wrapped = [LORA_DOCTOR, "run", "--offline", "--force", *OWN_CHECKS, "--log", log, "--", *child]
                times: dict[str, list[float]] = {"direct": [], "unbuffered": [], "wrapped": []}
                for _ in range(repeat):
                    for key, argv, env in (("direct", child, None), ("unbuffered", child, unbuffered),
                                           ("wrapped", wrapped, None)):
                        times[key].append(_timed(argv, dest, env))
                        for leftover in (log, dest):
                            if leftover != os.devnull and os.path.exists(leftover):
                                os.unlink(leftover)
                d, u, w = (statistics.median(times[k]) for k in ("direct", "unbuffered", "wrapped"))
                print(f"{mb} MB of {name} to {where}: direct {d:.2f} s, direct with PYTHONUNBUFFERED=1 {u:.2f} s, "
                      f"through lora-doctor run {w:.2f} s (x{w / d:.2f} / x{w / u:.2f})")


def redaction(mb: int, repeat: int) -> None:
    from lora_doctor.run.stream import LogWriter

    with tempfile.TemporaryDirectory() as tmp:
        log, dest = os.path.join(tmp, "train.log"), os.path.join(tmp, "stdout.bin")
        for name, line in WORST.items():
            # the log writer alone, in this process: 1 MiB chunks as the runner reads them in a flood
            block = ((line + " " + "x" * 40 + "\n") * ((1 << 20) // (len(line) + 42))).encode()
            chunks = max(1, mb * (1 << 20) // len(block))
            writer = LogWriter(os.devnull)
            started = time.process_time()  # CPU time: the other work on the machine does not count
            for _ in range(chunks):
                writer.write(block)
            writer.close()
            alone = time.process_time() - started
            print(f"{name}: the log writer alone {chunks * len(block) / alone / 1e6:.0f} MB per CPU second "
                  f"({alone * 2048 / mb:.1f} CPU s for 2 GB)")
            for how, code in (("64 KiB writes", WORST_CHILD), ("print() lines", WORST_LINES)):
                child = [sys.executable, "-c", code, str(mb), line]
                wrapped = [LORA_DOCTOR, "run", "--offline", "--force", *OWN_CHECKS, "--log", log, "--", *child]
                times: dict[str, list[float]] = {"direct": [], "wrapped": []}
                for _ in range(repeat):
                    for key, argv, env in (("direct", child, dict(os.environ, PYTHONUNBUFFERED="1")),
                                           ("wrapped", wrapped, None)):
                        times[key].append(_timed(argv, dest, env))
                        for leftover in (log, dest):
                            if os.path.exists(leftover):
                                os.unlink(leftover)
                d, w = statistics.median(times["direct"]), statistics.median(times["wrapped"])
                print(f"  {mb} MB in {how} to a file: direct {d:.2f} s, through lora-doctor run {w:.2f} s "
                      f"(x{w / d:.2f})")


def _wrapper_cpu(tmp: str, checks: list[str], command: list[str]) -> tuple[float, float]:
    """(CPU of the lora-doctor process, CPU of all its children) for one run."""
    argv = [sys.executable, "-c", MEASURE, "run", "--offline", "--force", *checks,
            "--log", os.path.join(tmp, f"{time.monotonic_ns()}.log"), "--", *command]
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True, cwd=tmp)
    own, children = map(float, next(ln for ln in proc.stderr.splitlines() if ln.startswith("@@ ")).split()[1:])
    return own, children


def cpu_share(seconds: float, repeat: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        report = os.path.join(tmp, "child-cpu")
        for label, checks in (("the wrapper's own checks (--only args)", OWN_CHECKS),
                              ("every check (the probe imports torch in a subprocess)", [])):
            fixed = [_wrapper_cpu(tmp, checks, [TRUE]) for _ in range(repeat)]
            fixed_own = statistics.median(f[0] for f in fixed)
            fixed_all = statistics.median(f[0] + f[1] for f in fixed)
            runs = [_wrapper_cpu(tmp, checks, [sys.executable, "-c", CPU, str(seconds), report])
                    + (float(Path(report).read_text()),) for _ in range(max(1, repeat // 2))]
            own, children, child = (statistics.median(r[i] for r in runs) for i in range(3))
            streaming = max(0.0, own - fixed_own)
            total = own + (children - child)
            print(f"CPU-bound child, {seconds:.0f} s, a progress line every 10 ms, {label}: child CPU {child:.2f} s; "
                  f"wrapper fixed {fixed_all:.3f} s (its own process {fixed_own:.3f} s), streaming {streaming:.3f} s "
                  f"= {100 * streaming / child:.2f}% of the child's; in all {total:.3f} s = {100 * total / child:.1f}%; "
                  f"under 2% for a child of more than {fixed_all / max(1e-9, 0.02 - streaming / child):.0f} s CPU")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=500)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--cpu-seconds", type=float, default=10.0)
    p.add_argument("--only", choices=("startup", "throughput", "redaction", "cpu"), action="append")
    args = p.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    history = tempfile.mkdtemp(prefix="lora-doctor-bench-")
    os.environ["LORA_DOCTOR_HOME"] = history  # the benchmark's runs stay out of the user's history
    parts = args.only or ["startup", "throughput", "redaction", "cpu"]
    if "startup" in parts:
        startup(max(5, args.repeat))
    if "throughput" in parts:
        throughput(args.mb, args.repeat)
    if "redaction" in parts:
        redaction(args.mb, args.repeat)
    if "cpu" in parts:
        cpu_share(args.cpu_seconds, args.repeat)
    shutil.rmtree(history, ignore_errors=True)


if __name__ == "__main__":
    main()
