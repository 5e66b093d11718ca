"""launch/edit.py, the one corrected-command editor: edits, quoting, and every fix in one command."""

from __future__ import annotations

import io
import shlex

import numpy as np
from safetensors.numpy import save_file

from support.dataset_builders import image, lineart_folder
from lora_doctor.launch.command import parse_command
from lora_doctor.launch.edit import Corrected, Edit, compose, corrected, join, quote
from lora_doctor.model import Finding, Severity

CMD = ["accelerate", "launch", "--num_processes", "1", "train_network.py", "--resolution", "1024",
       "--train_batch=4", "--enable_bucke", "--wandb_api_key=SECRET", "--output_dir", "/out dir"]


def test_corrected_keeps_places_and_spellings_and_redacts_secrets():
    launch = parse_command(CMD)
    text = corrected(launch, [("resolution", "512"), ("train_batch_size", 2), ("cache_latents", True)],
                     platform="linux")
    assert isinstance(text, Corrected) and text.launch is launch
    argv = shlex.split(text)
    assert argv[:5] == CMD[:5] and argv[5:7] == ["--resolution", "512"]
    assert "--train_batch_size=2" in argv and "--train_batch=4" not in argv  # the abbreviation, changed in place
    assert argv[-1] == "--cache_latents" and "SECRET" not in text and "'/out dir'" in text
    assert corrected(launch, [("x", "1")], equals=True).endswith("--x=1")
    assert corrected(parse_command(["accelerate", "launch"])) == ""


def test_token_edits_script_and_removal():
    launch = parse_command(CMD)
    typo = launch.script_args.index("--enable_bucke")
    text = corrected(launch, remove=("output_dir",), script="sdxl_train_network.py", tokens={typo: ["--enable_bucket"]},
                     platform="linux")
    argv = shlex.split(text)
    assert "sdxl_train_network.py" in argv and "--enable_bucket" in argv and "--enable_bucke" not in argv
    assert "--output_dir" not in argv and "/out dir" not in argv


def test_compose_applies_every_edit_once_and_the_first_wins_a_conflict():
    launch = parse_command(CMD)
    typo = launch.script_args.index("--enable_bucke")
    edits = [Edit(set=(("resolution", "512"),)), Edit(tokens=((typo, ("--enable_bucket",)),)),
             Edit(set=(("enable_bucket", True), ("min_bucket_reso", "256")), equals=True),
             Edit(set=(("resolution", "768"),), script="sdxl_train_network.py"), Edit(remove=("output_dir",))]
    argv = shlex.split(compose(launch, edits, platform="linux"))
    assert argv.count("--enable_bucket") == 1 and "--min_bucket_reso=256" in argv
    assert argv[argv.index("--resolution") + 1] == "512" and "768" not in argv
    assert "sdxl_train_network.py" in argv and "--output_dir" not in argv


def test_one_quoting_rule_for_the_users_shell():
    assert quote("a b", "linux") == "'a b'"
    assert quote("C:\\my models\\x.safetensors", "win32") == '"C:\\my models\\x.safetensors"'
    assert quote("transformers<5", "win32") == '"transformers<5"'
    assert join(["python", "a b"], "win32") == 'python "a b"'


def _model(path, sdxl=False):
    z = lambda *s: np.zeros(s, np.float16)  # noqa: E731
    if sdxl:
        t = {"model.diffusion_model.input_blocks.0.0.weight": z(4, 4, 3, 3),
             "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": z(2),
             "conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias": z(2)}
    save_file(t, str(path))
    return path


def test_env_output_ends_with_one_command_that_fixes_every_error(tmp_path):
    """Issue 12 item 5: four separate corrected commands each fixed one error; the output now ends
    with ONE command that applies all of them."""
    from lora_doctor.host.doctor import run_checks, summary
    from lora_doctor.output.render import render_results
    from lora_doctor.plugins import dataset, model_format, sdscripts_args
    from lora_doctor.testing import checks_of, make_context

    (tmp_path / "train_network.py").write_text("")
    (tmp_path / "networks").mkdir()
    (tmp_path / "networks" / "lora.py").write_text("")
    _model(tmp_path / "sdxl.safetensors", sdxl=True)
    lineart_folder(tmp_path / "train" / "1_x", n=3)  # .txt captions, default extension .caption
    image(tmp_path / "train" / "1_x" / "big.png", size=(128, 96), seed=7)
    (tmp_path / "train" / "1_x" / "big.txt").write_text("big", encoding="utf-8")
    command = ["accelerate", "launch", "train_network.py", "--pretrained_model_name_or_path=sdxl.safetensors",
               "--train_data_dir=train", "--resolution=64", "--network_module=networks.lora", "--output_dir=out",
               "--max_token_length=75", "--hf_token=hf_abcdefghijklmnopqrstuvwxyz"]
    ctx = make_context(command, cwd=tmp_path)
    checks = [c for p in (dataset, model_format, sdscripts_args) for c in checks_of(p)
              if c.id in ("dataset.buckets", "dataset.captions", "model.base", "args.options")]
    results = run_checks(checks, ctx)
    fixes = [f for r in results for f in r.findings if f.severity >= Severity.WARN and isinstance(f.fix_command, Corrected)]
    assert len(fixes) >= 4, [f.summary for f in fixes]
    out = io.StringIO()
    render_results(results, summary(results), stream=out)
    lines = out.getvalue().rstrip("\n").splitlines()
    assert lines[-2] == "Every fix above in one command:"
    final = shlex.split(lines[-1].strip().removeprefix("$ "))
    assert "sdxl_train_network.py" in final and "train_network.py" not in final  # the model's fix
    assert "--enable_bucket" in final and "--min_bucket_reso=64" in final  # the buckets' fix
    assert "--caption_extension=.txt" in final  # the captions' fix
    assert not any(a.startswith("--max_token_length") for a in final)  # the options' fix
    assert "hf_abcdefghijklmnopqrstuvwxyz" not in out.getvalue()
    # each separate fix is still shown where it belongs
    assert sum(1 for line in lines if line.strip().startswith("$ accelerate launch")) >= 5


def test_no_combined_command_for_a_single_fix():
    from lora_doctor.launch.edit import combined

    launch = parse_command(CMD)
    one = Finding(Severity.ERROR, "x", fix_command=corrected(launch, [("resolution", "512")]))
    plain = Finding(Severity.ERROR, "y", fix_command="pip install x")
    assert combined([one, plain]) == ""
    two = Finding(Severity.WARN, "z", fix_command=corrected(launch, [("cache_latents", True)]))
    assert "--cache_latents" in combined([one, two]) and "512" in combined([one, two])
