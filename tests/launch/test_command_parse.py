"""command.py: launcher forms, argparse-style abbreviations, and --config_file merged like sd-scripts."""

import pytest

from lora_doctor.launch.command import parse_command


@pytest.mark.parametrize("argv, launcher, script", [
    (["accelerate", "launch", "--num_cpu_threads_per_process", "1", "train_network.py", "--v2"], "accelerate", "train_network.py"),
    (["python", "-m", "accelerate.commands.launch", "--mixed_precision", "fp16", "sdxl_train_network.py"], "accelerate", "sdxl_train_network.py"),
    (["torchrun", "--nproc_per_node", "2", "train_network.py", "--v2"], "torchrun", "train_network.py"),
    (["venv/bin/python", "-u", "train_network.py", "--v2"], "python", "train_network.py"),
    (["train_network.py", "--v2"], "script", "train_network.py"),
    (["python", "-c", "print(1)"], "python", None),
])
def test_launcher_forms(argv, launcher, script):
    launch = parse_command(argv)
    assert (launch.launcher, launch.script) == (launcher, script)
    assert launch.options == ({"v2": True} if argv[-1] == "--v2" else {})


def test_abbreviation_expanded_like_argparse():
    launch = parse_command(["python", "train_network.py", "--enable_bucke", "--learning_rat=1e-4", "--net", "x"])
    assert launch.options["enable_bucket"] is True
    assert launch.options["learning_rate"] == "1e-4"
    assert launch.abbreviations == {"enable_bucke": "enable_bucket", "learning_rat": "learning_rate"}
    assert "network_module" in launch.ambiguous["net"] and "network_dim" in launch.ambiguous["net"]


def test_space_in_value_leaves_a_stray_token():
    launch = parse_command(["python", "train_network.py", "--resolution=768,", "768", "--network_args", "a=1", "b=2"])
    assert launch.positionals == ["768"]
    assert launch.options["network_args"] == ["a=1", "b=2"]


def test_config_file_merged_with_precedence(tmp_path):
    (tmp_path / "opts.toml").write_text(
        '[model]\npretrained_model_name_or_path = "m.safetensors"\n'
        '[training]\ntrain_batch_size = 4\nlearning_rate = 1e-4\ncache_latents = true\n'
        '[training.nested]\nnetwork_args = ["conv_dim=4"]\n')
    launch = parse_command(["python", "train_network.py", "--config_file", "opts", "--train_batch_size=2"],
                           cwd=tmp_path)
    assert launch.config_file == str(tmp_path / "opts.toml")  # .toml appended, relative to the cwd
    assert launch.config_error is None
    assert launch.options["train_batch_size"] == "2"  # command line > config file
    assert launch.options["learning_rate"] == 1e-4  # config file > default, typed as in the TOML
    assert launch.options["cache_latents"] is True
    assert launch.options["network_args"] == ["conv_dim=4"]  # every table flattened
    assert launch.cli_options == {"config_file": "opts", "train_batch_size": "2"}


def test_config_file_missing_or_broken(tmp_path):
    missing = parse_command(["python", "train_network.py", "--config_file=nope.toml"], cwd=tmp_path)
    assert missing.config_error == f"{tmp_path / 'nope.toml'} not found"
    (tmp_path / "bad.toml").write_text('path = "C:\\Users\\me"\n')  # a Windows path in "..."
    broken = parse_command(["python", "train_network.py", "--config_file=bad.toml"], cwd=tmp_path)
    assert broken.config_error.startswith(f"{tmp_path / 'bad.toml'} is not valid TOML")
    assert broken.options == {"config_file": "bad.toml"}
