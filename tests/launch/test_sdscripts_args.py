"""The args.options check: what sd-scripts (argparse, then the trainer) would reject, before launch."""

import sys

import pytest

from lora_doctor.launch.command import parse_command
from lora_doctor.context import build_context
from lora_doctor.model import Severity
from lora_doctor.plugins.sdscripts_args import check_options
from support.sdscripts_fixture import make_checkout


@pytest.fixture
def checkout(tmp_path):
    return make_checkout(tmp_path / "sd-scripts")


@pytest.fixture
def bare(tmp_path):
    """A folder with the scripts but no library/: options come from the shipped table."""
    folder = tmp_path / "bare"
    folder.mkdir()
    for name in ("train_network.py", "sdxl_train_network.py"):
        (folder / name).write_text("")
    (folder / "networks").mkdir()
    (folder / "networks" / "lora.py").write_text("")
    return folder


def check(cwd, *args, script="train_network.py"):
    launch = parse_command([sys.executable, script, *args], cwd=cwd)
    ctx = build_context(python=sys.executable, launch=launch, cwd=cwd, facts={}, env={"PATH": ""})
    return list(check_options(ctx))


def only(findings, cause):
    hits = [f for f in findings if f.cause == cause]
    assert len(hits) == 1, [(f.severity, f.summary, f.cause) for f in findings]
    return hits[0]


NET = "--network_module=networks.lora"


def test_clean_command_is_one_ok_line(checkout):
    findings = check(checkout, NET, "--train_batch_size=2", "--mixed_precision=fp16", "--full_fp16")
    assert [(f.severity, f.summary) for f in findings] == [(Severity.OK, "4 options of train_network.py look right")]


def test_options_are_read_from_the_checkout(checkout, bare):
    """--xformers is in the shipped table but not in this checkout's parser: the checkout wins."""
    f = only(check(checkout, NET, "--xformers"), "args.unrecognized_option")
    assert f.severity == Severity.ERROR and "(read statically)" in f.detail
    assert not [f for f in check(bare, NET, "--xformers") if f.severity > Severity.INFO]


def test_unknown_option_did_you_mean(bare):
    f = only(check(bare, NET, "--learning_rte=1e-4"), "args.unrecognized_option")
    assert f.summary.endswith("did you mean --learning_rate?")
    assert f.fix_command.endswith(f"train_network.py {NET} --learning_rate=1e-4")


def test_abbreviation_is_a_warning_with_the_full_spelling(checkout):
    findings = check(checkout, NET, "--enable_bucke")
    (f,) = [f for f in findings if f.severity == Severity.WARN]
    assert f.summary == "--enable_bucke is accepted as --enable_bucket (an argparse abbreviation)"
    assert f.fix_command.endswith("--enable_bucket")


def test_ambiguous_prefix_is_an_error(checkout):
    f = only(check(checkout, NET, "--network", "x"), "args.unrecognized_option")
    assert "ambiguous" in f.summary and "--network_dim" in f.summary and "--network_module" in f.summary


def test_sdxl_option_with_the_sd15_script(bare):
    f = only(check(bare, NET, "--cache_text_encoder_outputs"), "model.sdxl_options_with_sd15_script")
    assert "sdxl_train_network.py" in f.fix
    assert not check(bare, NET, "--cache_text_encoder_outputs", script="sdxl_train_network.py")[0].cause


def test_space_inside_a_value(bare):
    f = only(check(bare, NET, "--resolution=768,", "768"), "args.stray_token_from_whitespace")
    assert f.fix_command.endswith(f"{NET} --resolution=768,768")
    g = only(check(bare, NET, "--train_data_dir", "C:/My", "Images"), "args.stray_token_from_whitespace")
    assert g.fix_command.endswith("'--train_data_dir=C:/My Images'")  # one word for the shell


@pytest.mark.parametrize("args, needle", [
    (["--max_token_length=75"], "75 is the default"),
    (["--mixed_precision=fp61"], "--mixed_precision=fp61 is not one of: no, fp16, bf16"),
    (["--optimizer_type=adam8bit"], "did you mean AdamW8bit?"),
    (["--lr_scheduler=cosine_with_restart"], "did you mean cosine_with_restarts?"),
])
def test_invalid_choices(bare, args, needle):
    f = only(check(bare, NET, *args), "args.invalid_choice")
    assert f.severity == Severity.ERROR and needle in f.summary


def test_valid_optimizer_names_pass(bare):
    for name in ("AdamW8bit", "adamw8bit", "Prodigy", "bitsandbytes.optim.AdEMAMix8bit", "SGD", "DAdaptAdam"):
        assert not [f for f in check(bare, NET, f"--optimizer_type={name}") if f.severity > Severity.INFO], name


@pytest.mark.parametrize("args, needle", [
    (["--cache_latents", "--random_crop"], "--cache_latents cannot be used with --random_crop"),
    (["--full_fp16"], "--full_fp16 needs --mixed_precision=fp16 (it is no)"),
    (["--full_bf16", "--mixed_precision=fp16"], "--full_bf16 needs --mixed_precision=bf16 (it is fp16)"),
    (["--use_8bit_adam", "--optimizer_type=AdamW"], "--use_8bit_adam and --optimizer_type together"),
])
def test_incompatible_options(bare, args, needle):
    f = only(check(bare, NET, *args), "args.incompatible_options")
    assert f.summary == needle


def test_v2_with_the_sdxl_script(bare):
    f = only(check(bare, NET, "--v2", script="sdxl_train_network.py"), "args.incompatible_options")
    assert "v2 cannot be enabled in SDXL training" in f.summary


def test_sample_interval_zero(bare):
    f = only(check(bare, NET, "--sample_every_n_epochs=0"), "args.sample_every_n_epochs_zero")
    assert "--sample_every_n_epochs" not in f.fix_command


def test_network_args_malformed(bare, tmp_path):
    f = only(check(bare, NET, "--network_args", "conv_dim:4"), "args.network_args_malformed")
    assert "'conv_dim=4'" in f.fix
    (bare / "c.toml").write_text('network_args = "algo=loha, conv_dim=16"\n')
    g = only(check(bare, NET, "--config_file=c.toml"), "args.network_args_malformed")
    assert "one string" in g.summary
    assert not [f for f in check(bare, NET, "--network_args", "conv_dim=4", "conv_alpha=1") if f.cause]


def test_network_module(checkout):
    f = only(check(checkout, "--network_module=networks.lorra"), "args.network_module_not_found")
    assert f.summary.endswith("did you mean networks.lora?") and f.fix_command.endswith("--network_module=networks.lora")
    assert "--network_module is missing" in only(check(checkout), "args.network_module_not_found").summary
    g = only(check(checkout, "--network_module=lycoris.kohya"), "versions.network_module_package_missing")
    assert g.fix_command.endswith("-m pip install lycoris_lora")  # asked of the real interpreter
    only(check(checkout, "--network_module=no_such_pkg_xyz.lora"), "args.network_module_not_found")
    assert not [f for f in check(checkout, "--network_module=json.decoder") if f.cause]  # a real module


def test_files_named_by_options(checkout):
    (checkout / "out" / "run-000001-state").mkdir(parents=True)
    findings = check(checkout, NET, "--resume=out/run-state", "--dataset_config=ds.toml",
                     "--sample_prompts=prompts.txt", "--config_file=nope")
    f = only(findings, "args.resume_state_not_found")
    assert "run-000001-state" in f.detail
    assert only(findings, "config.dataset_toml_not_found").severity == Severity.ERROR
    assert only(findings, "config.sample_prompts_file_not_found").severity == Severity.WARN
    assert any(f.summary == f"--config_file: {checkout / 'nope.toml'} not found" for f in findings)
    assert not [f for f in check(checkout, NET, "--resume=out/run-000001-state") if f.cause]


def test_script_not_in_the_working_directory(checkout):
    f = only(check(checkout.parent, NET), "install.script_not_found")
    assert f.fix_command == f"cd {checkout}"


def test_unknown_script_is_not_judged(tmp_path):
    (tmp_path / "my_trainer.py").write_text("")
    findings = check(tmp_path, "--whatever", "1", script="my_trainer.py")
    assert [f.severity for f in findings] == [Severity.INFO]


def test_config_file_windows_path_in_double_quotes(bare):
    (bare / "c.toml").write_text('[paths]\ntrain_data_dir = "C:\\Users\\me\\train"\n')
    f = only(check(bare, NET, "--config_file=c.toml"), "config.dataset_toml_syntax")
    assert f.severity == Severity.ERROR
    assert f.summary == (f"--config_file {bare / 'c.toml'}, line 2: a Windows path in double quotes, where "
                         "backslashes start escape sequences")
    assert f.detail.startswith('train_data_dir = "C:\\Users\\me\\train"\n')
    assert "train_data_dir = 'C:\\Users\\me\\train'" in f.fix
    (bare / "c.toml").write_text('learning_rate = "1e-4\n')
    g = only(check(bare, NET, "--config_file=c.toml"), "config.dataset_toml_syntax")
    assert g.summary.endswith("line 1 is not valid TOML") and "missing quote" in g.fix


def test_config_file_values_of_the_wrong_type(bare):
    (bare / "c.toml").write_text('train_batch_size = "4"\nresolution = 512\ncache_latents = "false"\n'
                                 'output_dir = "C:\\new"\nnetwork_dim = 16\nlearning_rate = 1e-4\n')
    findings = check(bare, NET, "--config_file=c.toml", "--resolution=512")
    bad = {f.summary.split(" ")[0]: f for f in findings if f.severity >= Severity.WARN}
    assert set(bad) == {"train_batch_size", "cache_latents", "output_dir"}, [f.summary for f in findings]
    assert bad["train_batch_size"].fix == "Write train_batch_size = 4."
    assert bad["cache_latents"].severity == Severity.ERROR and "without quotes" in bad["cache_latents"].fix
    assert "control character" in bad["output_dir"].summary and "output_dir = 'C:\\new'" in bad["output_dir"].fix


def test_removing_an_option_written_with_a_space_removes_its_value_too(checkout):
    """The fix of a missing --resume folder used to delete `--resume` and leave its path behind as a
    stray argument; the one editor (launch/edit.py) knows the option takes a value."""
    import shlex

    f = only(check(checkout, NET, "--resume", "out/run-state", "--seed=1"), "args.resume_state_not_found")
    argv = shlex.split(f.fix_command)
    assert "--resume" not in argv and "out/run-state" not in argv and argv[-1] == "--seed=1"
