"""model.base / model.tokenizer against real safetensors files, folders, HF caches and a loopback Hub."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from support import run_cli
from support.hub_server import HubServer
from lora_doctor.hub import repo as hub_repo
from lora_doctor.launch.command import parse_command
from lora_doctor.context import build_context
from lora_doctor.model import Severity
from lora_doctor.plugins.model_format import check_model, check_tokenizer
from lora_doctor.checkpoint.safetensors_header import HeaderError, read_header

FACTS = {"python": {"version": "3.10.11"}, "packages": {"huggingface_hub": "0.34.3"},
         "torch": {"imported": False}, "probe": {"ok": True}}
TO_K = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
Z = lambda *shape: np.zeros(shape, np.float16)  # noqa: E731


def sd1():
    return {TO_K: Z(4, 768), "model.diffusion_model.input_blocks.0.0.weight": Z(4, 4, 3, 3),
            "first_stage_model.encoder.conv_in.weight": Z(2),
            "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": Z(2)}


def sd2():
    return {TO_K: Z(4, 1024), "model.diffusion_model.input_blocks.0.0.weight": Z(4, 4, 3, 3),
            "cond_stage_model.model.token_embedding.weight": Z(2)}


def sdxl():
    return {"model.diffusion_model.input_blocks.0.0.weight": Z(4, 4, 3, 3),
            "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": Z(2),
            "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias": Z(2)}


def lora():
    return {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": Z(4, 2),
            "lora_unet_down_blocks_0_attentions_0_proj_in.alpha": Z(1)}


def vae():
    return {"encoder.conv_in.weight": Z(2), "decoder.conv_out.weight": Z(2)}


def write(path: Path, tensors) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path


def ctx_for(tmp_path, *args, script="train_network.py", env=None, offline=True, model=None):
    launch = parse_command(["accelerate", "launch", script, *args]) if script else None
    env = env if env is not None else {"HOME": str(tmp_path / "home"), "HF_HOME": str(tmp_path / "hf")}
    env = dict(env, HF_HUB_OFFLINE="1") if offline else env  # training offline too: uncached is an error
    return build_context(launch=launch, cwd=tmp_path, env=env, facts=FACTS, offline=offline, model=model)


def findings(check, ctx):
    return list(check(ctx))


def worst(fs):
    return max(fs, key=lambda f: f.severity)


# --- the safetensors header reader ------------------------------------------------------------

def test_header_reads_kind_without_loading(tmp_path):
    header = read_header(write(tmp_path / "m.safetensors", sd1()))
    assert header.shape(TO_K) == (4, 768)


def test_truncated_file_is_reported_with_sizes(tmp_path):
    path = write(tmp_path / "m.safetensors", sd1())
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(HeaderError, match="truncated"):
        read_header(path)


def _bytes_read() -> int | None:
    """What this process has read so far (Linux /proc/self/io rchar), or None elsewhere."""
    try:
        with open("/proc/self/io") as fh:
            return next(int(line.split()[1]) for line in fh if line.startswith("rchar:"))
    except (OSError, StopIteration, ValueError):
        return None


def test_sparse_full_size_file_is_read_in_milliseconds(tmp_path):
    """Only the header is read: counted in bytes where the OS tells (a time limit is a benchmark's
    job: a loaded machine makes any fixed one flaky), else with a wide time margin."""
    tensors = {TO_K: ("F16", [320, 768]), "conditioner.embedders.0.transformer.x": ("F16", [2])}
    header, offset = {}, 0
    big = 6_000_000_000
    header["model.diffusion_model.big"] = {"dtype": "F16", "shape": [big // 2], "data_offsets": [0, big]}
    offset = big
    for name, (dtype, shape) in tensors.items():
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    path = tmp_path / "big.safetensors"
    with open(path, "wb") as fh:
        fh.write(len(raw).to_bytes(8, "little") + raw)
        fh.seek(8 + len(raw) + offset - 1)
        fh.write(b"\0")
    before, started = _bytes_read(), time.perf_counter()
    parsed = read_header(path)
    seconds, after = time.perf_counter() - started, _bytes_read()
    if before is not None and after is not None:
        assert after - before < 1 << 20  # the header, not the 6 GB behind it
    else:
        assert seconds < 2.0  # reading 6 GB takes far longer, even from the page cache
    assert parsed.file_size > 6e9 and parsed.shape(TO_K) == (320, 768)


# --- single files against the script -----------------------------------------------------------

def test_sdxl_file_with_train_network_is_an_error_with_the_sdxl_command(tmp_path):
    model = write(tmp_path / "sd_xl_base_1.0.safetensors", sdxl())
    fs = findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", str(model), "--xformers"))
    bad = worst(fs)
    assert bad.severity == Severity.ERROR and bad.cause == "model.sdxl_checkpoint_with_sd15_script"
    assert "sdxl_train_network.py" in bad.fix
    assert bad.fix_command.startswith("accelerate launch sdxl_train_network.py --pretrained_model_name_or_path")
    assert "--xformers" in bad.fix_command


def test_sd1_file_with_sdxl_script(tmp_path):
    model = write(tmp_path / "v1-5.safetensors", sd1())
    fs = findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", str(model),
                                       script="sdxl_train_network.py"))
    assert worst(fs).cause == "model.sd15_checkpoint_with_sdxl_script"
    assert "train_network.py" in worst(fs).fix_command


def test_sd2_without_v2_and_sd1_with_v2(tmp_path):
    two = write(tmp_path / "sd2.safetensors", sd2())
    fs = findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", str(two)))
    assert worst(fs).cause == "model.v2_flag_mismatch" and worst(fs).fix_command.endswith("--v2")
    assert findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", str(two), "--v2"))[-1].severity == Severity.OK
    one = write(tmp_path / "sd1.safetensors", sd1())
    fs = findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", str(one), "--v2"))
    assert worst(fs).cause == "model.v2_flag_mismatch" and "--v2" not in worst(fs).fix_command


def test_sd1_file_fits_train_network(tmp_path):
    model = write(tmp_path / "v1-5.safetensors", sd1())
    fs = findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", str(model)))
    assert [f.severity for f in fs] == [Severity.OK]
    assert "Stable Diffusion 1.x" in fs[0].summary


def test_lora_and_vae_as_base_model(tmp_path):
    model = write(tmp_path / "my_lora.safetensors", lora())
    fs = findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", str(model)))
    assert worst(fs).cause == "model.lora_file_as_base_model"
    model = write(tmp_path / "vae.safetensors", vae())
    fs = findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", str(model)))
    assert worst(fs).severity == Severity.ERROR and "--vae" in worst(fs).fix


def test_html_page_saved_as_safetensors(tmp_path):
    page = tmp_path / "model.safetensors"
    page.write_text("<!DOCTYPE html><html><head><title>Sign in</title></head><body>login</body></html>" * 3)
    f = worst(findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", str(page))))
    assert f.severity == Severity.ERROR and f.cause == "model.file_corrupt"
    assert "HTML" in f.summary


def test_truncated_model_is_corrupt(tmp_path):
    model = write(tmp_path / "m.safetensors", sdxl())
    model.write_bytes(model.read_bytes()[:-3])
    f = worst(findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", str(model))))
    assert f.cause == "model.file_corrupt" and "truncated" in f.summary


def test_ckpt_pickle_is_a_warning_and_a_broken_zip_an_error(tmp_path):
    import pickle
    import zipfile

    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(pickle.dumps({"state_dict": {}}, protocol=2))
    assert worst(findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", str(ckpt)))).severity == Severity.WARN
    with zipfile.ZipFile(tmp_path / "z.ckpt", "w") as zf:
        zf.writestr("archive/data.pkl", b"x" * 5000)
    data = (tmp_path / "z.ckpt").read_bytes()
    (tmp_path / "z.ckpt").write_bytes(data[:2000])
    f = worst(findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", str(tmp_path / "z.ckpt"))))
    assert f.cause == "model.file_corrupt"


def test_missing_path_names_resolved_path_cwd_and_near_miss(tmp_path):
    models = tmp_path / "models"
    write(models / "v1-5-pruned-emaonly.safetensors", sd1())
    ctx = ctx_for(tmp_path, "--pretrained_model_name_or_path", "models/v1-5-pruned-emaonly.safetensor")
    f = worst(findings(check_model, ctx))
    assert f.severity == Severity.ERROR and f.cause == "model.invalid_model_path_or_repo_id"
    assert str(models / "v1-5-pruned-emaonly.safetensor") in f.detail
    assert f"working directory: {tmp_path}" in f.detail
    assert "v1-5-pruned-emaonly.safetensors" in f.detail and "did you mean" in f.fix
    assert f.fix_command == ("accelerate launch train_network.py --pretrained_model_name_or_path "
                             f"{models / 'v1-5-pruned-emaonly.safetensors'}")


def test_url_and_invalid_repo_id(tmp_path):
    f = worst(findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path",
                                            "https://huggingface.co/org/model/blob/main/m.safetensors")))
    assert f.cause == "model.invalid_model_path_or_repo_id" and "org/model" in f.fix
    f = worst(findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", "bad repo name")))
    assert f.cause == "model.invalid_model_path_or_repo_id"


def test_removed_runwayml_repo_offers_the_replacement(tmp_path):
    f = worst(findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path",
                                            "runwayml/stable-diffusion-v1-5")))
    assert f.cause == "model.hf_repo_removed"
    assert "stable-diffusion-v1-5/stable-diffusion-v1-5" in f.fix_command


# --- diffusers folders -------------------------------------------------------------------------

def diffusers_folder(root: Path, cls="StableDiffusionPipeline", dim=768, skip=()):
    index = {"_class_name": cls, "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "scheduler": ["diffusers", "PNDMScheduler"]}
    root.mkdir(parents=True, exist_ok=True)
    (root / "model_index.json").write_text(json.dumps(index))
    for name in ("unet", "vae", "text_encoder"):
        if name in skip:
            continue
        (root / name).mkdir()
        (root / name / "config.json").write_text(json.dumps({"cross_attention_dim": dim} if name == "unet" else {}))
        write(root / name / "diffusion_pytorch_model.safetensors", {"w": Z(2)})
    (root / "scheduler").mkdir()
    (root / "scheduler" / "scheduler_config.json").write_text("{}")
    return root


def test_diffusers_folder_missing_subfolder(tmp_path):
    folder = diffusers_folder(tmp_path / "sd15", skip=("vae",))
    f = worst(findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", str(folder))))
    assert f.severity == Severity.ERROR and "vae/ (folder missing)" in f.detail and f.cause == "model.file_corrupt"


def test_complete_diffusers_folder_and_sd2_unet_needs_v2(tmp_path):
    folder = diffusers_folder(tmp_path / "sd15")
    assert worst(findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", str(folder)))).severity == Severity.OK
    folder = diffusers_folder(tmp_path / "sd21", dim=1024)
    assert worst(findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", str(folder)))).cause == "model.v2_flag_mismatch"


def test_folder_without_model_index_points_at_the_file(tmp_path):
    write(tmp_path / "models" / "anything.safetensors", sd1())
    f = worst(findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", str(tmp_path / "models"))))
    assert f.cause == "model.invalid_model_path_or_repo_id" and "anything.safetensors" in f.fix


# --- side files --------------------------------------------------------------------------------

def test_missing_vae_and_network_weights(tmp_path):
    model = write(tmp_path / "v1-5.safetensors", sd1())
    ctx = ctx_for(tmp_path, "--pretrained_model_name_or_path", str(model), "--vae", "vae/sdxl_vae.safetensors",
                  "--network_weights", "out/last.safetensors")
    causes = {f.cause for f in findings(check_model, ctx)}
    assert {"model.vae_not_found", "model.network_weights_not_found"} <= causes


# --- the tokenizer -----------------------------------------------------------------------------

def cache_tokenizer(hub_cache: Path, repo: str, subfolder: str = ""):
    snap = hub_cache / ("models--" + repo.replace("/", "--")) / "snapshots" / "abc123"
    folder = snap / subfolder if subfolder else snap
    folder.mkdir(parents=True)
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        (folder / name).write_text("{}")
    refs = snap.parent.parent / "refs"
    refs.mkdir()
    (refs / "main").write_text("abc123")


def test_tokenizer_offline_not_cached_is_an_error(tmp_path):
    ctx = ctx_for(tmp_path, "--pretrained_model_name_or_path", "x.safetensors")
    (f,) = findings(check_tokenizer, ctx)
    assert f.severity == Severity.ERROR and f.cause == "network.tokenizer_not_cached_offline"
    assert f.fix_command.startswith("hf download openai/clip-vit-large-patch14 vocab.json")


def test_tokenizer_in_hf_cache_and_in_tokenizer_cache_dir(tmp_path):
    env = {"HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf")}
    cache_tokenizer(tmp_path / "hf" / "hub", "openai/clip-vit-large-patch14")
    (f,) = findings(check_tokenizer, ctx_for(tmp_path, env=env))
    assert f.severity == Severity.OK and "Hugging Face cache" in f.summary
    # SDXL needs bigG too: only one of the two is cached
    fs = findings(check_tokenizer, ctx_for(tmp_path, env=env, script="sdxl_train_network.py"))
    assert [f.severity for f in fs] == [Severity.OK, Severity.ERROR]
    assert "laion/CLIP-ViT-bigG" in fs[1].summary
    (tmp_path / "tok" / "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k").mkdir(parents=True)
    (tmp_path / "tok" / "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k" / "vocab.json").write_text("{}")
    (tmp_path / "tok" / "laion_CLIP-ViT-bigG-14-laion2B-39B-b160k" / "merges.txt").write_text("#version: 0.2\n")
    fs = findings(check_tokenizer, ctx_for(tmp_path, "--tokenizer_cache_dir", "tok", env=env, script="sdxl_train_network.py"))
    assert [f.severity for f in fs] == [Severity.OK, Severity.OK]


def test_v2_needs_the_sd2_tokenizer(tmp_path):
    env = {"HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf")}
    cache_tokenizer(tmp_path / "hf" / "hub", "stabilityai/stable-diffusion-2", "tokenizer")
    (f,) = findings(check_tokenizer, ctx_for(tmp_path, "--v2", env=env))
    assert f.severity == Severity.OK and "stabilityai/stable-diffusion-2" in f.summary


# --- the Hub, online ---------------------------------------------------------------------------

REPOS = {"org/ok": {"status": "ok", "siblings": ["model_index.json"]}, "org/gated": {"status": "gated"},
         "org/deleted": {"status": "deleted"},
         "openai/clip-vit-large-patch14": {"status": "ok", "siblings": ["vocab.json", "merges.txt"]}}


def online_ctx(tmp_path, hub, model, **extra_env):
    env = {"HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": hub.url, **extra_env}
    return ctx_for(tmp_path, "--pretrained_model_name_or_path", model, env=env, offline=False)


def test_repo_ids_against_the_hub(tmp_path):
    with HubServer(repos=REPOS) as hub:
        ok = findings(check_model, online_ctx(tmp_path, hub, "org/ok"))
        gated = findings(check_model, online_ctx(tmp_path, hub, "org/gated"))
        gone = findings(check_model, online_ctx(tmp_path, hub, "org/deleted"))
        missing = findings(check_model, online_ctx(tmp_path, hub, "org/never-was"))
        tok = findings(check_tokenizer, online_ctx(tmp_path, hub, "org/ok"))
    assert worst(ok).severity == Severity.INFO and "exists on the Hub" in ok[0].summary
    assert worst(gated).cause == "auth.gated_repo_no_access" and worst(gated).severity == Severity.ERROR
    assert worst(gated).fix_command == "hf auth login"  # the target's huggingface_hub 0.34.3 has the `hf` command
    assert worst(gone).cause == "model.invalid_model_path_or_repo_id"
    assert worst(missing).severity == Severity.ERROR
    assert tok[0].severity == Severity.INFO and "downloads on the first run" in tok[0].summary


def test_invalid_token_breaks_even_the_public_tokenizer(tmp_path):
    token = "hf_" + "Z" * 34
    with HubServer(repos=REPOS) as hub:
        (f,) = findings(check_tokenizer, online_ctx(tmp_path, hub, "org/ok", HF_TOKEN=token))
        assert hub.requests and hub.requests[0][2] is True
    assert f.cause == "auth.invalid_token" and token not in repr(f)


def test_a_truncated_non_ascii_token_breaks_the_tokenizer_download_not_the_network(tmp_path):
    # a paste ending in '…' cannot be put in an HTTP header: huggingface_hub raises UnicodeEncodeError
    with HubServer(repos=REPOS) as hub:
        (f,) = findings(check_tokenizer, online_ctx(tmp_path, hub, "org/ok", HF_TOKEN="hf_abc…"))
        (m,) = findings(check_model, online_ctx(tmp_path, hub, "org/ok", HF_TOKEN="hf_abc…"))
        assert hub.requests == []
    assert f.severity == Severity.ERROR and f.cause == "auth.invalid_token" and "not ASCII" in f.summary
    assert m.severity == Severity.ERROR and m.cause == "auth.invalid_token"
    assert "hf_abc" not in repr(f) + repr(m)


def test_a_hub_that_never_answers_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(hub_repo, "LOOKUP_TIMEOUT", 1.0)
    with HubServer(hang=True) as hub:
        started = time.monotonic()
        fs = findings(check_model, online_ctx(tmp_path, hub, "org/ok"))
        tok = findings(check_tokenizer, online_ctx(tmp_path, hub, "org/ok"))
        elapsed = time.monotonic() - started
    assert elapsed < 8
    assert worst(fs).cause == "network.hf_hub_unreachable" and "timeout" in worst(fs).summary
    assert worst(fs).severity == Severity.ERROR  # not cached: training cannot download it either
    assert tok[0].cause == "network.hf_hub_unreachable" and tok[0].severity == Severity.ERROR


def test_cached_repo_works_offline(tmp_path):
    env = {"HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf")}
    snap = tmp_path / "hf" / "hub" / "models--org--cached" / "snapshots" / "s1"
    diffusers_folder(snap)
    fs = findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", "org/cached", env=env))
    assert worst(fs).severity == Severity.OK and "Hugging Face cache" in fs[0].summary
    fs = findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", "org/not-cached", env=env))
    assert worst(fs).severity == Severity.ERROR and worst(fs).fix_command == "hf download org/not-cached"


# --- through the real CLI ----------------------------------------------------------------------

def test_cli_reports_the_seed_troubles(tmp_path, isolated_env):
    model = write(tmp_path / "sd_xl_base_1.0.safetensors", sdxl())
    proc = run_cli(["env", "--offline", "--json", "--only", "model", "--", "accelerate", "launch",
                    "train_network.py", "--pretrained_model_name_or_path", str(model)], env=isolated_env, cwd=tmp_path)
    data = json.loads(proc.stdout)
    base = next(c for c in data["checks"] if c["id"] == "model.base")
    assert base["status"] == "error"
    assert any(f["cause"] == "model.sdxl_checkpoint_with_sd15_script" for f in base["findings"])
    assert proc.returncode == 1
    proc = run_cli(["env", "--offline", "--only", "model.base", "--model", "nowhere/model.safetensors"],
                   env=isolated_env, cwd=tmp_path)
    assert "base model not found: nowhere/model.safetensors" in proc.stdout
    assert f"working directory: {tmp_path}" in proc.stdout and proc.returncode == 1


def test_incomplete_cached_snapshot_is_an_error_offline_and_a_warning_online(tmp_path):
    snap = tmp_path / "hf" / "hub" / "models--org--partial" / "snapshots" / "s1"
    diffusers_folder(snap, skip=("unet",))
    blobs = snap.parent.parent / "blobs"
    blobs.mkdir()
    (blobs / "0123abcd.incomplete").write_bytes(b"\0" * 10)
    env = {"HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf")}
    f = worst(findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", "org/partial", env=env)))
    assert f.severity == Severity.ERROR and "unet/ (folder missing)" in f.detail and ".incomplete" in f.detail
    with HubServer(repos={"org/partial": {"status": "ok"}}) as hub:
        fs = findings(check_model, online_ctx(tmp_path, hub, "org/partial"))
    assert worst(fs).severity == Severity.WARN and "download on the first run" in worst(fs).summary


def test_planted_token_never_appears_in_cli_output(tmp_path, isolated_env):
    token = "hf_" + "Q" * 34
    repos = dict(REPOS, **{"org/gated": {"status": "gated"}})
    with HubServer(tokens={token: {"name": "alice"}}, repos=repos) as hub:
        env = dict(isolated_env, HF_TOKEN=token, HF_ENDPOINT=hub.url)
        outputs = []
        for model, fmt in (("org/gated", "--json"), ("runwayml/stable-diffusion-v1-5", "-v")):
            proc = run_cli(["env", fmt, "--only", "model", "--", "accelerate", "launch", "train_network.py",
                            "--pretrained_model_name_or_path", model, "--huggingface_token", token],
                           env=env, cwd=tmp_path)
            outputs.append(proc.stdout + proc.stderr)
        assert any(auth for _, _, auth in hub.requests)  # the token was sent to the (loopback) Hub only
    assert all(token not in out and token[3:] not in out for out in outputs)
    assert "auth.gated_repo_no_access" in outputs[0] and "stable-diffusion-v1-5/stable-diffusion-v1-5" in outputs[1]


def test_windows_path_on_this_machine(tmp_path):
    f = worst(findings(check_model, ctx_for(tmp_path, "--pretrained_model_name_or_path", r"C:\AI\v1-5.safetensors")))
    assert f.cause == "model.invalid_model_path_or_repo_id" and "Windows path" in f.detail


# --- --network_weights against --network_dim/--network_alpha/--network_module (issue 12 item 7) ---

def has_opt(command: str, name: str, value: str) -> bool:
    return f"--{name} {value}" in command or f"--{name}={value}" in command


def lora_file(path: Path, rank=16, alpha=8.0, *, conv_rank=None, family="lora", te="lora_te_", metadata=None):
    """A LoRA as sd-scripts' networks.lora saves it: per module lora_down (rank, in), lora_up, alpha."""
    tensors = {}
    for name, shape in (("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q", (320,)),
                        ("lora_unet_down_blocks_0_attentions_0_proj_in", (320, 1, 1)),
                        (f"{te}text_model_encoder_layers_0_mlp_fc1", (768,))):
        if family == "lora":
            tensors[f"{name}.lora_down.weight"] = Z(rank, *shape)
            tensors[f"{name}.lora_up.weight"] = Z(shape[0], rank, *shape[1:])
        else:  # LyCORIS LoHa
            tensors[f"{name}.hada_w1_a"] = Z(shape[0], rank)
            tensors[f"{name}.hada_w1_b"] = Z(rank, shape[0])
        tensors[f"{name}.alpha"] = np.array(alpha, np.float16)
    if conv_rank:
        name = "lora_unet_down_blocks_0_resnets_0_conv1"
        tensors[f"{name}.lora_down.weight"] = Z(conv_rank, 320, 3, 3)
        tensors[f"{name}.lora_up.weight"] = Z(320, conv_rank, 1, 1)
        tensors[f"{name}.alpha"] = np.array(1.0, np.float16)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


def weights_findings(tmp_path, *args, script="train_network.py"):
    base = write(tmp_path / "base.safetensors", sdxl() if script.startswith("sdxl") else sd1())
    ctx = ctx_for(tmp_path, f"--pretrained_model_name_or_path={base}", "--network_module=networks.lora",
                  "--network_weights", "prev.safetensors", *args, script=script)
    return [f for f in findings(check_model, ctx) if "network_weights" in f.summary]


def test_network_weights_rank_other_than_network_dim_is_an_error_with_the_fix(tmp_path):
    lora_file(tmp_path / "prev.safetensors", rank=16, alpha=8.0,
              metadata={"ss_network_module": "networks.lora", "ss_network_dim": "16", "ss_network_alpha": "8.0"})
    (f,) = weights_findings(tmp_path, "--network_dim=32", "--network_alpha=16")
    assert f.severity == Severity.ERROR and f.cause == "model.network_weights_shape_mismatch"
    assert "rank 16, but --network_dim is 32" in f.summary and "size mismatch" in f.detail
    assert has_opt(f.fix_command, "network_dim", "16") and has_opt(f.fix_command, "network_alpha", "8")
    (f,) = weights_findings(tmp_path)  # no --network_dim: sd-scripts' default 4
    assert f.severity == Severity.ERROR and "--network_dim is 4 (the default)" in f.summary
    (f,) = weights_findings(tmp_path, "--network_dim=16", "--network_alpha=8")
    assert f.severity == Severity.OK and "rank 16, alpha 8" in f.summary
    (f,) = weights_findings(tmp_path, "--network_dim=32", "--dim_from_weights")
    assert f.severity == Severity.OK and "--dim_from_weights" in f.summary


def test_network_weights_alpha_other_than_network_alpha_is_a_warning(tmp_path):
    lora_file(tmp_path / "prev.safetensors", rank=8, alpha=4.0)  # alpha read from the tensors (no metadata)
    (f,) = weights_findings(tmp_path, "--network_dim=8", "--network_alpha=1")
    assert f.severity == Severity.WARN and "alpha 4, but --network_alpha is 1" in f.summary
    assert "4× the strength" in f.detail and has_opt(f.fix_command, "network_alpha", "4")


def test_network_weights_of_another_family_or_base_model(tmp_path):
    lora_file(tmp_path / "prev.safetensors", family="loha", metadata={"ss_network_module": "lycoris.kohya",
                                                                      "ss_network_args": '{"algo": "loha"}'})
    (f,) = weights_findings(tmp_path, "--network_dim=16")
    assert f.severity == Severity.ERROR and "LyCORIS LOHA" in f.summary and "lycoris.kohya" in f.fix
    lora_file(tmp_path / "prev.safetensors", rank=16, te="lora_te1_")  # an SDXL LoRA
    (f,) = weights_findings(tmp_path, "--network_dim=16", "--network_alpha=8")
    assert f.severity == Severity.ERROR and "for SDXL" in f.summary
    (f,) = weights_findings(tmp_path, "--network_dim=16", "--network_alpha=8", script="sdxl_train_network.py")
    assert f.severity == Severity.OK


def test_network_weights_conv_layers_need_conv_dim(tmp_path):
    lora_file(tmp_path / "prev.safetensors", rank=16, conv_rank=8)
    (f,) = weights_findings(tmp_path, "--network_dim=16", "--network_alpha=8")
    assert f.severity == Severity.WARN and "3×3 conv layers (rank 8)" in f.summary
    (f,) = weights_findings(tmp_path, "--network_dim=16", "--network_alpha=8", "--network_args", "conv_dim=4")
    assert f.severity == Severity.ERROR and "conv_dim=4" in f.summary
    (f,) = weights_findings(tmp_path, "--network_dim=16", "--network_alpha=8", "--network_args", "conv_dim=8",
                            "conv_alpha=1")
    assert f.severity == Severity.OK


# --- a --tokenizer_cache_dir written by another transformers major (issue 12 item 7) -------------

def test_tokenizer_cache_saved_by_transformers_5_is_an_error_for_transformers_4(tmp_path):
    folder = tmp_path / "tok" / "openai_clip-vit-large-patch14"
    folder.mkdir(parents=True)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (folder / name).write_text("{}")
    env = {"HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf")}

    def tokenizer_findings(transformers):
        facts = {**FACTS, "packages": {**FACTS["packages"], "transformers": transformers}}
        launch = parse_command(["accelerate", "launch", "train_network.py", "--tokenizer_cache_dir", "tok"])
        return findings(check_tokenizer, build_context(launch=launch, cwd=tmp_path, env=env, facts=facts, offline=True))

    (f,) = tokenizer_findings("4.54.1")
    assert f.severity == Severity.ERROR and f.cause == "versions.tokenizer_cache_from_other_transformers"
    assert "tokenizer.json only" in f.summary and "transformers 4.54.1" in f.summary
    assert f.fix_command == f"rm -rf {folder}"
    (f,) = tokenizer_findings("5.0.0")
    assert f.severity == Severity.OK
    for name in ("vocab.json", "merges.txt"):
        (folder / name).write_text("{}")
    (f,) = tokenizer_findings("4.54.1")
    assert f.severity == Severity.OK


def test_an_empty_tokenizer_cache_folder_is_loaded_and_fails(tmp_path):
    (tmp_path / "tok" / "openai_clip-vit-large-patch14").mkdir(parents=True)
    (f,) = findings(check_tokenizer, ctx_for(tmp_path, "--tokenizer_cache_dir", "tok"))
    assert f.severity == Severity.ERROR and "is empty" in f.summary
