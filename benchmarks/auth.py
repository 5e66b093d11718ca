"""Time the auth checks' hot paths; prints numbers.

    .venv/bin/python benchmarks/auth.py [--lines 100000]

1. history scan (hash compare) of a bash history of N lines, beside the baseline of a plain
   substring search (which would need the token in clear, so the doctor does not do it).
2. whoami against the loopback Hub: first call (imports huggingface_hub) and a cached call.
3. auth.token and auth.git_credentials as a whole against a temp HOME with the `store` helper
   (real git subprocesses).
4. the never-answering Hub and the hanging git helper: how long each check takes to give up.
"""

from __future__ import annotations

import argparse
import os
import secrets
import string
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def token() -> str:
    return "hf_" + "".join(secrets.choice(string.ascii_letters) for _ in range(34))


def timed(fn, repeat=5):
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=100_000)
    args = parser.parse_args()

    from hub_server import HubServer
    from lora_doctor.hub import token as hf_auth
    from lora_doctor.hub import shell_history as history_scan
    from lora_doctor.context import build_context
    from lora_doctor.plugins.credentials import check_credentials
    from lora_doctor.plugins.hf_token import check_token

    tok = token()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        lines = [f"python train_network.py --output_dir out{i} --network_dim 32" for i in range(args.lines)]
        lines[args.lines // 2] = f"huggingface-cli login --token {tok}"
        text = "\n".join(lines) + "\n"
        (home / ".bash_history").write_text(text)
        size = len(text) / 1e6
        scan = timed(lambda: history_scan.scan(tok, {"HOME": str(home)}))
        plain = timed(lambda: [i for i, line in enumerate(text.splitlines()) if tok in line])
        print(f"history scan, {args.lines} lines ({size:.1f} MB): {scan * 1000:.0f} ms "
              f"(baseline substring search: {plain * 1000:.0f} ms)")

        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "GIT_"))}
        env.update(HOME=str(home), HF_HOME=str(home / "hf"), GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
                   GIT_CONFIG_NOSYSTEM="1", XDG_CONFIG_HOME=str(home / ".config"))
        facts = {"python": {"platform": sys.platform}, "packages": {"huggingface_hub": "0.34.3"}}
        with HubServer(tokens={tok: {"name": "alice", "role": "read"}}) as hub:
            env["HF_ENDPOINT"] = hub.url
            started = time.perf_counter()
            hf_auth.whoami(tok, env)
            first = time.perf_counter() - started
            cached = timed(lambda: hf_auth.whoami(tok, env), 20)
            print(f"whoami (loopback Hub): first {first * 1000:.0f} ms incl. importing huggingface_hub, "
                  f"cached {cached * 1e6:.0f} µs")
            import subprocess

            subprocess.run(["git", "config", "--global", "credential.helper", "store"], env=env, check=True)
            (home / ".git-credentials").write_text(f"https://hf_user:{token()}@huggingface.co\n")
            env["HF_TOKEN"] = tok
            ctx = build_context(env=env, cwd=home, facts=facts)
            (home / ".bash_history").write_text("ls\n")
            t_token = timed(lambda: list(check_token(ctx)))
            t_cred = timed(lambda: list(check_credentials(ctx)), 3)
            print(f"auth.token (whoami cached, small history): {t_token * 1000:.1f} ms; "
                  f"auth.git_credentials (store helper, 1 stale token): {t_cred * 1000:.0f} ms")

        with HubServer(hang=True) as hub:
            ctx = build_context(env=dict(env, HF_ENDPOINT=hub.url, HF_TOKEN=token()), cwd=home, facts=facts)
            started = time.perf_counter()
            list(check_token(ctx))
            print(f"auth.token against a never-answering Hub gives up after {time.perf_counter() - started:.1f} s")
        bindir = home / "bin"
        bindir.mkdir()
        (bindir / "git-credential-hang").write_text("#!/bin/sh\nsleep 300\n")
        (bindir / "git-credential-hang").chmod(0o755)
        subprocess.run(["git", "config", "--global", "credential.helper", "hang"], env=env, check=True)
        ctx = build_context(env=dict(env, PATH=f"{bindir}{os.pathsep}{env['PATH']}"), cwd=home, facts=facts,
                            offline=True)
        started = time.perf_counter()
        list(check_credentials(ctx))
        print(f"auth.git_credentials with a hanging helper gives up after {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
