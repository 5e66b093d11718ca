"""A small but real sd-scripts-shaped checkout: setup_parser() built from library/ helpers the way
sd-scripts does, argparse with abbreviations, --config_file merged like read_config_from_file."""

from __future__ import annotations

from pathlib import Path

TRAIN_UTIL = '''
import argparse
import os
import sys

import toml_like


def add_sd_models_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--v2", action="store_true")
    parser.add_argument("--v_parameterization", action="store_true")
    parser.add_argument("--pretrained_model_name_or_path", type=str, default=None)


def add_dataset_arguments(parser, support_dreambooth, support_caption, support_caption_dropout):
    parser.add_argument("--train_data_dir", type=str, default=None)
    parser.add_argument("--resolution", type=str, default=None)
    parser.add_argument("--enable_bucket", action="store_true")
    parser.add_argument("--cache_latents", action="store_true")
    parser.add_argument("--color_aug", action="store_true")
    parser.add_argument("--random_crop", action="store_true")
    parser.add_argument("--caption_extension", type=str, default=".caption")


def add_training_arguments(parser, support_dreambooth):
    parser.add_argument("--output_dir", type=str, default=None)
    parser.add_argument("--output_name", type=str, default=None)
    parser.add_argument("--max_token_length", type=int, default=None, choices=[None, 150, 225])
    parser.add_argument("--mixed_precision", type=str, default="no", choices=["no", "fp16", "bf16"])
    parser.add_argument("--full_fp16", action="store_true")
    parser.add_argument("--full_bf16", action="store_true")
    parser.add_argument("--train_batch_size", type=int, default=1)
    parser.add_argument("--max_train_steps", type=int, default=1600)
    parser.add_argument("--resume", type=str, default=None)
    parser.add_argument("--sample_every_n_epochs", type=int, default=None)
    parser.add_argument("--sample_prompts", type=str, default=None)
    parser.add_argument("--huggingface_token", type=str, default=None)
    parser.add_argument("--wandb_api_key", type=str, default=None)
    parser.add_argument("--config_file", type=str, default=None)


def add_optimizer_arguments(parser):
    parser.add_argument("--optimizer_type", type=str, default="")
    parser.add_argument("--learning_rate", type=float, default=2e-6)
    parser.add_argument("--lr_scheduler", type=str, default="constant")


def read_config_from_file(args, parser):
    if not args.config_file:
        return args
    path = args.config_file if args.config_file.endswith(".toml") else args.config_file + ".toml"
    if not os.path.exists(path):
        print(f"{path} not found.")
        exit(1)
    flat = {}
    for section in toml_like.load(path).values():
        flat.update(section if isinstance(section, dict) else {})
    return parser.parse_args(namespace=argparse.Namespace(**flat))
'''

TOML_LIKE = '''
import tomllib


def load(path):
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    return {k: (v if isinstance(v, dict) else {k: v}) for k, v in data.items()}
'''

CONFIG_UTIL = '''
from pathlib import Path


def add_config_arguments(parser):
    parser.add_argument("--dataset_config", type=Path, default=None)
'''

TRAIN_NETWORK = '''
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "library"))
import config_util
import train_util


def setup_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    train_util.add_sd_models_arguments(parser)
    train_util.add_dataset_arguments(parser, True, True, True)
    train_util.add_training_arguments(parser, True)
    train_util.add_optimizer_arguments(parser)
    config_util.add_config_arguments(parser)
    parser.add_argument("--no_metadata", action="store_true")
    parser.add_argument("--network_module", type=str, default=None)
    parser.add_argument("--network_dim", type=int, default=None)
    parser.add_argument("--network_args", type=str, default=None, nargs="*")
    return parser


if __name__ == "__main__":
    parser = setup_parser()
    args = parser.parse_args()
    args = train_util.read_config_from_file(args, parser)
    with open(os.environ.get("TRAIN_MARKER", "launched.json"), "w") as fh:
        json.dump({k: str(v) for k, v in vars(args).items()}, fh)
    print("training with", args.train_batch_size, flush=True)
    if os.environ.get("TRAIN_NO_DATA"):
        print("No data found. Please verify arguments (train_data_dir must be the parent of folders with images)")
        sys.exit(0)
    sys.exit(int(os.environ.get("TRAIN_EXIT", "0")))
'''


def make_checkout(root: Path) -> Path:
    """Write the checkout under root; returns its folder."""
    (root / "library").mkdir(parents=True)
    (root / "networks").mkdir()
    (root / "library" / "train_util.py").write_text(TRAIN_UTIL)
    (root / "library" / "toml_like.py").write_text(TOML_LIKE)
    (root / "library" / "config_util.py").write_text(CONFIG_UTIL)
    (root / "networks" / "lora.py").write_text("# LoRA network module\n")
    (root / "networks" / "dylora.py").write_text("# DyLoRA network module\n")
    (root / "train_network.py").write_text(TRAIN_NETWORK)
    (root / "requirements.txt").write_text("accelerate==1.6.0\n")
    return root
