"""The seed user's story, end to end, through the real CLI.

A first-timer on a new machine trains a line-art LoRA on SD 1.5 with
`accelerate launch train_network.py …` and meets, one after another:
  1. an HF token pasted truncated (`hf_abc…`) in HF_TOKEN, and a stale older token in git's `store` helper;
  2. a typo in the path of the single-file model, then the removed `runwayml/stable-diffusion-v1-5`;
  3. a line-art page larger than --resolution with bucketing off, drawn on a transparent background;
  4. a venv whose transformers (4.30.2) is older than the checkout's pin (4.54.1);
  5. a CPU-only torch with --mixed_precision=fp16.
Everything is real: a temporary HOME and HF cache, git with the store helper, the loopback Hub,
an sd-scripts-like checkout with sd-scripts' real requirements.txt, a second venv on this machine's
CPU torch with a transformers 4.30.2 distribution shadowing, PNGs made with Pillow. Each trouble
must be an error before launch (with its cause, a fix and the exact command), `run` must refuse to
launch, no token may ever be printed, and each printed fix, applied, must make its finding go away.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from support import run_cli
from support.dataset_builders import caption, image, lineart_rgba
from support.hub_server import HubServer

pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="POSIX venv layout and shell fixes"),
              pytest.mark.skipif(not shutil.which("git"), reason="the story has git's store helper")]

GOOD = "hf_" + "GoodTokenGoodTokenGoodTokenGood12x"  # hf_ + 34 letters, as the Hub issues them
STALE = "hf_" + "StaleTokenStaleTokenStaleTokenSta1"
TRUNCATED = "hf_abc…"
SECRETS = (GOOD, STALE, TRUNCATED, "hf_abc", GOOD[3:], STALE[3:])
SD15_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
MODEL = "v1-5-pruned-emaonly.safetensors"

# sd-scripts v0.10.1's requirements.txt, as the checkout ships it.
REQUIREMENTS = """\
accelerate==1.6.0
transformers==4.54.1
diffusers[torch]==0.32.1
ftfy==6.3.1
opencv-python==4.10.0.84
einops==0.7.0
bitsandbytes
lion-pytorch==0.2.3
schedulefree==1.4
pytorch-optimizer==3.9.0
prodigy-plus-schedule-free==1.9.2
prodigyopt==1.1.2
tensorboard
safetensors==0.4.5
toml==0.10.2
voluptuous==0.15.2
huggingface-hub==0.34.3
imagesize==1.4.1
numpy
rich==14.1.0
sentencepiece==0.2.1
-e .
"""

TRAIN_NETWORK = '''\
import argparse
import json
import os
import sys


def setup_parser():
    parser = argparse.ArgumentParser()
    for name in ("pretrained_model_name_or_path", "train_data_dir", "resolution", "output_dir", "network_module",
                 "caption_extension", "tokenizer_cache_dir"):
        parser.add_argument("--" + name, type=str, default=None)
    parser.add_argument("--mixed_precision", type=str, default="no", choices=["no", "fp16", "bf16"])
    parser.add_argument("--network_dim", type=int, default=None)
    parser.add_argument("--max_train_steps", type=int, default=1600)
    parser.add_argument("--enable_bucket", action="store_true")
    return parser


if __name__ == "__main__":
    args = setup_parser().parse_args()
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "launched.json"), "w") as fh:
        json.dump(vars(args), fh)
    print("steps: 1/1 avr_loss=0.1", flush=True)
'''


def _dist(site: Path, name: str, version: str) -> None:
    folder = site / f"{name.replace('-', '_')}-{version}.dist-info"
    folder.mkdir(exist_ok=True)
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")


def _venv(checkout: Path) -> Path:
    """sd-scripts' own venv: this machine's Python and CPU torch, the checkout's pins as distributions,
    transformers 4.30.2 from an older install left in it."""
    venv = checkout / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
                   check=True, timeout=120)
    site = next((venv / "lib").glob("python3*/site-packages"))
    # The test venv's packages (torch, Pillow, accelerate …) below the venv's own, like system site-packages.
    (site / "zz-test-venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for line in REQUIREMENTS.splitlines():
        if "==" in line:
            name, version = line.split("==")
            name = name.split("[")[0]
            _dist(site, name, "4.30.2" if name == "transformers" else version)
    _dist(site, "library", "0.0.0")  # the checkout itself (`-e .`)
    accelerate = venv / "bin" / "accelerate"  # the console script pip writes into the venv
    accelerate.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\n"
                          "from accelerate.commands.accelerate_cli import main\nsys.exit(main())\n")
    accelerate.chmod(0o755)
    return site


def _sd1_file(path: Path) -> None:
    z = lambda *shape: np.zeros(shape, np.float16)  # noqa: E731
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"model.diffusion_model.input_blocks.0.0.weight": z(320, 4, 3, 3),
               "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": z(320, 768),
               "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": z(8, 768),
               "first_stage_model.decoder.conv_in.weight": z(4, 4, 3, 3)}, str(path))


class Machine:
    """The first-timer's machine, in tmp_path."""

    def __init__(self, root: Path, isolated_env: dict, hub: HubServer):
        self.root = root
        self.checkout = root / "sd-scripts"
        (self.checkout / "library").mkdir(parents=True)
        (self.checkout / "networks").mkdir()
        (self.checkout / "library" / "train_util.py").write_text("# sd-scripts library\n")
        (self.checkout / "networks" / "lora.py").write_text("# LoRA network module\n")
        (self.checkout / "train_network.py").write_text(TRAIN_NETWORK)
        (self.checkout / "requirements.txt").write_text(REQUIREMENTS)
        self.site = _venv(self.checkout)
        self.model = root / "models" / MODEL
        _sd1_file(self.model)
        self.page = lineart_rgba(root / "train" / "10_lineart" / "page01.png", (1536, 1024))
        caption(self.page, "lineart, monochrome, 1girl")
        for i in range(3):
            caption(image(root / "train" / "10_lineart" / f"sketch{i}.png", (512, 512), seed=i + 1),
                    "lineart, monochrome, 1girl")
        home = Path(isolated_env["HOME"])
        self.env = dict(isolated_env, HF_ENDPOINT=hub.url, HF_TOKEN=TRUNCATED,
                        PATH=f"{self.checkout / 'venv' / 'bin'}{os.pathsep}{isolated_env.get('PATH', os.defpath)}",
                        VIRTUAL_ENV=str(self.checkout / "venv"))
        subprocess.run(["git", "config", "--global", "credential.helper", "store"], env=self.env, check=True, timeout=30)
        self.git_credentials = home / ".git-credentials"
        self.git_credentials.write_text(f"https://hf_user:{STALE}@huggingface.co\n")
        self.command = ["accelerate", "launch", "--num_cpu_threads_per_process", "1",
                        str(self.checkout / "train_network.py"),
                        f"--pretrained_model_name_or_path={self.model.with_suffix('.safetensor')}",
                        f"--train_data_dir={root / 'train'}", "--resolution=512", f"--output_dir={root / 'out'}",
                        "--network_module=networks.lora", "--network_dim=16", "--caption_extension=.txt",
                        "--mixed_precision=fp16"]

    def cli(self, *args: str, command: list[str] | None = None):
        proc = run_cli([*args, "--", *(command or self.command)], env=self.env, cwd=self.root)
        for secret in SECRETS:
            assert secret not in proc.stdout + proc.stderr, f"a token fragment was printed by {args}"
        return proc

    def env_json(self, *only: str) -> tuple[dict[str, list[dict]], int]:
        """{cause: [findings]} of `lora-doctor env --json [--only …] -- <command>`, and the exit code."""
        proc = self.cli("env", "--json", *(("--only", *only) if only else ()))
        assert proc.returncode in (0, 1), proc.stderr
        data = json.loads(proc.stdout)
        by_cause: dict[str, list[dict]] = {}
        for check in data["checks"]:
            for f in check["findings"]:
                by_cause.setdefault(f["cause"], []).append(dict(f, check=check["id"]))
        return by_cause, proc.returncode

    def apply(self, finding: dict, printed_for: list[str]) -> None:
        """Apply a printed fix that is a change of the training command. The fix was printed for the
        command `printed_for`; the options it changed, added or removed are changed in ours."""
        fixed = shlex.split(finding["fix_command"])
        assert fixed[:5] == printed_for[:5], finding["fix_command"]
        name = lambda tok: tok.split("=", 1)[0]  # noqa: E731 (every option here is written --name=value)
        added = [t for t in fixed if t not in printed_for]
        removed = {name(t) for t in printed_for if t not in fixed} - {name(t) for t in added}
        command = [t for t in self.command if name(t) not in removed]
        for tok in added:
            at = [i for i, t in enumerate(command) if name(t) == name(tok)]
            if at:
                command[at[0]] = tok
            else:
                command.append(tok)
        self.command = command

    def shell(self, command: str) -> None:
        subprocess.run(["bash", "-c", command], env=self.env, cwd=self.root, check=True, timeout=60)


TOKENIZER_FILES = ["vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"]


@pytest.fixture
def machine(tmp_path, isolated_env):
    with HubServer(tokens={GOOD: {"name": "firsttimer", "role": "read"}},
                   repos={SD15_REPO: {"siblings": ["model_index.json", "unet/config.json"]},
                          "openai/clip-vit-large-patch14": {"siblings": TOKENIZER_FILES}}) as hub:
        yield Machine(tmp_path, isolated_env, hub)


def _error(found: dict, cause: str) -> dict:
    hits = [f for f in found.get(cause, []) if f["severity"] == "error"]
    assert hits, f"no error with cause {cause}; causes: {sorted(c for c in found if c)}"
    f = hits[0]
    assert f["fix"], f"{cause} has no fix"
    return f


SEED_CAUSES = ("auth.invalid_token", "model.invalid_model_path_or_repo_id", "dataset.image_too_large_no_bucket",
               "dataset.image_transparent_background", "versions.clip_tokenizer_added_tokens_encoder",
               "cuda.fp16_requires_gpu", "cuda.torch_cpu_build")


def test_the_seed_users_story(machine):
    """Every trouble is an error before launch, run refuses, each printed fix makes its finding go away."""
    first = list(machine.command)
    found, code = machine.env_json()
    assert code == 1
    for cause in SEED_CAUSES:
        assert _error(found, cause)["fix_command"], f"{cause} has no exact fix command"
    token = _error(found, "auth.invalid_token")
    assert "HF_TOKEN" in token["summary"] and "truncated" in token["summary"]
    assert token["fix_command"] == "unset HF_TOKEN"
    # the truncated token also breaks the public tokenizer download, and it is not "the network"
    assert not found.get("network.hf_hub_unreachable")
    assert any(f["check"] == "model.tokenizer" and f["severity"] == "error" for f in found["auth.invalid_token"])
    # the stale git credential breaks git clone/push, not training: a warning with its removal
    (stale,) = found["auth.stale_git_credential"]
    assert stale["severity"] == "warn" and "invalid" in stale["summary"]
    assert stale["fix_command"].endswith("| git credential reject")
    assert f"did you mean {machine.model}" in _error(found, "model.invalid_model_path_or_repo_id")["fix"]
    python = machine.checkout / "venv" / "bin" / "python"
    assert _error(found, "versions.clip_tokenizer_added_tokens_encoder")["fix_command"] == (
        f"cd {machine.checkout}\n{python} -m pip install -r requirements.txt")
    cpu = _error(found, "cuda.torch_cpu_build")
    assert f"{python} -m pip install torch==" in cpu["fix_command"]
    assert "--index-url https://download.pytorch.org/whl/cu" in cpu["fix_command"]

    # `run` refuses to launch and shows the same on the terminal, each with the command to paste
    proc = machine.cli("run")
    assert proc.returncode == 78
    assert not (machine.checkout / "launched.json").exists()
    out = proc.stdout + proc.stderr
    for line in ("[✗] Hugging Face token", "[✗] Base model", "[✗] Resolution and buckets", "[✗] Package versions",
                 "[✗] GPU", "[✗] Mixed precision", "$ unset HF_TOKEN", "git credential reject"):
        assert line in out, line
    flat = " ".join(out.split())
    for words in ("truncated", "base model not found", "larger than --resolution=512", "black lines on black",
                  "transformers 4.30.2", "CPU-only build", "--mixed_precision fp16 needs a CUDA GPU"):
        assert words in flat, words

    # The fixes. 1: unset the truncated HF_TOKEN and log in properly; erase the stale git credential.
    assert machine.env.pop("HF_TOKEN") == TRUNCATED
    token_file = Path(machine.env["HF_HOME"]) / "token"
    token_file.parent.mkdir(parents=True, exist_ok=True)
    token_file.write_text(GOOD)  # what `hf auth login` writes
    machine.shell(stale["fix_command"])
    assert machine.git_credentials.read_text() == ""
    # 2: the near-miss model path. 3: --enable_bucket, and the page flattened onto white.
    machine.apply(_error(found, "model.invalid_model_path_or_repo_id"), first)
    machine.apply(_error(found, "dataset.image_too_large_no_bucket"), first)
    machine.shell(_error(found, "dataset.image_transparent_background")["fix_command"])
    # 4: what `pip install -r requirements.txt` does to the venv's transformers
    old = machine.site / "transformers-4.30.2.dist-info"
    (old / "METADATA").write_text("Metadata-Version: 2.1\nName: transformers\nVersion: 4.54.1\n")
    old.rename(machine.site / "transformers-4.54.1.dist-info")
    # 5: no GPU here, so --mixed_precision no; the CPU build stays an error (it needs a CUDA torch)
    machine.apply(_error(found, "cuda.fp16_requires_gpu"), first)
    assert "--mixed_precision=no" in machine.command and "--enable_bucket" in machine.command

    found, _ = machine.env_json()
    for cause in SEED_CAUSES[:-1] + ("auth.stale_git_credential",):
        assert not found.get(cause), found.get(cause)
    errors = sorted({f["cause"] or f["check"] for fs in found.values() for f in fs if f["severity"] == "error"})
    assert errors == ["cuda.torch_cpu_build"], errors
    assert any("is valid: user firsttimer" in f["summary"] for f in found[None])
    assert any("Stable Diffusion 1.x checkpoint" in f["summary"] for f in found[None])

    # With a CUDA build installed (this machine has no GPU: skip that one check), training launches.
    proc = machine.cli("run", "--skip", "gpu.cuda")
    assert proc.returncode == 0, proc.stdout[-3000:]
    launched = json.loads((machine.checkout / "launched.json").read_text())
    assert launched["enable_bucket"] is True and launched["mixed_precision"] == "no"
    assert launched["pretrained_model_name_or_path"] == str(machine.model)
    written = [p for p in (machine.root / "out").rglob("*") if p.is_file()]
    assert written  # the run's log and report
    for path in written:
        data = path.read_bytes().decode("utf-8", "replace")
        assert not any(secret in data for secret in SECRETS), path


def test_the_removed_runwayml_repo_gets_its_replacement(machine):
    machine.env.pop("HF_TOKEN")
    machine.command = [a if not a.startswith("--pretrained") else
                       "--pretrained_model_name_or_path=runwayml/stable-diffusion-v1-5" for a in machine.command]
    printed_for = list(machine.command)
    found, _ = machine.env_json("model")
    removed = _error(found, "model.hf_repo_removed")
    assert SD15_REPO in removed["fix"]
    machine.apply(removed, printed_for)
    assert f"--pretrained_model_name_or_path={SD15_REPO}" in machine.command
    found, code = machine.env_json("model")
    assert code == 0 and not found.get("model.hf_repo_removed")
    assert any(f"{SD15_REPO} exists on the Hub" in f["summary"] for f in found[None])
