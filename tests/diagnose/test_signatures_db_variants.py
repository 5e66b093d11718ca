"""Signatures hold for the cause, not for one log's wording: other real shapes of the same errors.

Each log below is built from the exact message texts of sd-scripts, accelerate, torch, transformers
and huggingface_hub (other versions, Windows paths, rich tracebacks, rank prefixes, folded rich
records, CRLF) and must still get its cause as the top diagnosis.
"""

from __future__ import annotations

import pytest

from lora_doctor.diagnose.match import diagnose_text, load_signatures

RICH_TB = """\
╭─────────────────────────────── Traceback (most recent call last) ────────────────────────────────╮
│ C:\\kohya_ss\\sd-scripts\\library\\train_util.py:1102 in __getitem__                                 │
│                                                                                                  │
│ ❱ 1102 │   │   │   │   assert (                                                                  │
╰──────────────────────────────────────────────────────────────────────────────────────────────────╯
AssertionError: image too large, but cropping and bucketing are disabled / 画像サイズが大きいのでface_crop_aug_rangeかrandom_crop、またはbucketを有効にしてください: C:\\data\\img\\10_cat\\big.png
"""

CHILD_FAILED = """\
[rank0]: Traceback (most recent call last):
[rank0]:   File "/ws/sd-scripts/sdxl_train_network.py", line 234, in <module>
[rank0]:     trainer.train(args)
[rank0]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 1.25 GiB. GPU 0 has a total capacity of 23.55 GiB of which 512.00 MiB is free.
E1125 10:00:00.000000 139 torch/distributed/elastic/multiprocessing/api.py:874] failed (exitcode: 1) local_rank: 0 (pid: 140) of binary: /ws/venv/bin/python
Traceback (most recent call last):
  File "/ws/venv/bin/accelerate", line 8, in <module>
    sys.exit(main())
torch.distributed.elastic.multiprocessing.errors.ChildFailedError:
============================================================
sdxl_train_network.py FAILED
------------------------------------------------------------
Root Cause (first observed failure):
[0]:
  time      : 2025-11-25_10:00:00
  rank      : 0 (local_rank: 0)
  exitcode  : 1 (pid: 140)
============================================================
"""

FOLDED_NO_DATA = """\
                    INFO     Using DreamBooth method.                           train_network.py:530
                    INFO     prepare images.                                      train_util.py:2112
                    ERROR    No data found. Please verify arguments           train_network.py:576
                             (train_data_dir must be the parent of folders
                             with images) /
                             画像がありません。引数指定を確認してください
"""

VARIANTS = [
    ("dataset.image_too_large_no_bucket", RICH_TB),
    ("cuda.oom", CHILD_FAILED),
    ("dataset.train_data_dir_not_parent", FOLDED_NO_DATA),
    ("dataset.caption_not_utf8", "ERROR ファイルにUTF-8以外の文字があります: C:\\data\\10_cat\\a.txt\r\n"
                                 "UnicodeDecodeError: 'utf-8' codec can't decode byte 0x82 in position 0: invalid start byte\r\n"),
    ("cuda.fp16_requires_gpu", "ValueError: fp16 mixed precision requires a GPU (not 'cpu').\n"),
    ("model.invalid_model_path_or_repo_id",
     "huggingface_hub.errors.HFValidationError: Repo id must use alphanumeric chars or '-', '_', '.', '--' and '..' "
     "are forbidden, '-' and '.' cannot start or end the name, max length is 96: 'C:\\models\\v1-5.safetensors'.\n"),
    ("model.invalid_model_path_or_repo_id",
     "huggingface_hub.utils._validators.HFValidationError: Repo id must be in the form 'repo_name' or "
     "'namespace/repo_name': 'https://huggingface.co/a/b'. Use `repo_type` argument if needed.\n"),
    ("config.dataset_toml_syntax", "tomllib.TOMLDecodeError: Invalid initial character for a key part (at line 3, column 1)\n"),
    ("network.tokenizer_not_cached_offline",
     "OSError: Can't load tokenizer for 'openai/clip-vit-large-patch14'. If you were trying to load it from "
     "'https://huggingface.co/models', make sure you don't have a local directory with the same name.\n"
     "huggingface_hub.errors.OfflineModeIsEnabled: Cannot reach https://huggingface.co/openai/clip-vit-large-patch14/"
     "resolve/main/vocab.json: offline mode is enabled. To disable it, please unset the `HF_HUB_OFFLINE` environment variable.\n"),
    ("auth.invalid_token",
     "OSError: Can't load tokenizer for 'openai/clip-vit-large-patch14'.\n"
     "requests.exceptions.HTTPError: 401 Client Error: Unauthorized for url: https://huggingface.co/openai/"
     "clip-vit-large-patch14/resolve/main/vocab.json (Request ID: Root=1-6;x)\n\nInvalid credentials in Authorization header\n"),
    ("model.hf_repo_removed",
     "OSError: runwayml/stable-diffusion-v1-5 is not a local folder and is not a valid model identifier listed on "
     "'https://huggingface.co/models'\n"),
    ("versions.huggingface_hub_incompatible",
     "ImportError: cannot import name 'cached_download' from 'huggingface_hub' (C:\\kohya\\venv\\lib\\site-packages\\"
     "huggingface_hub\\__init__.py)\n"),
    ("versions.log_backend_missing",
     "ValueError: Tried adding logger tensorboard, but package is unavailable in the system.\n"),
    ("os.process_killed_out_of_ram",
     "subprocess.CalledProcessError: Command '['/venv/bin/python', 'train_network.py']' died with <Signals.SIGKILL: 9>.\n"),
    ("os.windows_paging_file_too_small",
     "OSError: [WinError 1455] The paging file is too small for this operation to complete. Error loading "
     "\"C:\\kohya\\venv\\lib\\site-packages\\torch\\lib\\caffe2_detectron_ops_gpu.dll\" or one of its dependencies.\n"),
    ("os.disk_full", "OSError: [Errno 28] No space left on device\n"),
    ("versions.optional_optimizer_package_missing",
     "ImportError: No lion_pytorch / lion_pytorch がインストールされていないようです\n"),
    ("args.invalid_choice",
     "train_network.py: error: argument --mixed_precision: invalid choice: 'fp32' (choose from 'no', 'fp16', 'bf16')\n"),
    ("dataset.caption_extension_mismatch",
     "WARNING  No caption file found for 40 images. Training will continue without captions for these images.\n"
     "    caption_extension: txt\n"),
    ("os.interrupted_by_user", "Keyboard interruption in main thread... closing server.\n"),
    ("cuda.oom", "torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 6.00 GiB total "
                 "capacity; 5.01 GiB already allocated; 0 bytes free)\n12:00:00-000 INFO Training has ended.\n"
                 "Keyboard interruption in main thread... closing server.\n"),
]


@pytest.fixture(scope="module")
def host():
    return load_signatures()[1]


@pytest.mark.parametrize("cause,log", VARIANTS, ids=[f"{i}-{c}" for i, (c, _) in enumerate(VARIANTS)])
def test_variant_is_named(host, cause, log):
    ids = [d.signature_id for d in diagnose_text(log, host=host).diagnoses]
    assert ids[:1] == [cause], ids


# Answers that used to be wrong (issue 11, part 5): the right cause, and the fix of that cause.
def _top(host, log):
    d = diagnose_text(log, host=host).diagnoses
    return d[0] if d else None


@pytest.mark.parametrize("first_key", ["time_embed.0.weight", "output_blocks.2.2.conv.weight", "label_emb.0.0.bias"])
def test_lora_file_as_sdxl_base_is_decided_by_the_key_sets_not_the_first_key(host, first_key):
    lora = ("RuntimeError: Error(s) in loading state_dict for SdxlUNet2DConditionModel:\n"
            f'\tMissing key(s) in state_dict: "{first_key}", "input_blocks.4.1.proj_in.weight", "out.2.bias".\n')
    assert _top(host, lora).signature_id == "model.lora_file_as_base_model"
    sd15 = ("RuntimeError: Error(s) in loading state_dict for SdxlUNet2DConditionModel:\n"
            '\tUnexpected key(s) in state_dict: "input_blocks.1.1.proj_in.weight", "input_blocks.1.1.norm.bias".\n'
            f'\tMissing key(s) in state_dict: "{first_key}", "label_emb.0.0.weight".\n')
    assert _top(host, sd15).signature_id == "model.sd15_checkpoint_with_sdxl_script"


def test_unreadable_latent_cache_gets_the_cache_fix_not_the_image_fix(host):
    log = ("                    ERROR    Error loading file: D:\\lora\\img\\10_cat\\a.npz             strategy_base.py:469\n"
           "Traceback (most recent call last):\n  File \"D:\\sd-scripts\\library\\strategy_base.py\", line 461, in "
           "_default_is_disk_cached_latents_expected\n    npz = np.load(npz_path)\n"
           "zipfile.BadZipFile: File is not a zip file\n")
    d = _top(host, log)
    assert d.signature_id == "dataset.image_corrupt"
    text = " ".join([d.title, d.why, *d.fix])
    assert ".npz" in text and "Delete" in text and "re-download" not in text


@pytest.mark.parametrize("log", [
    "RuntimeError: NaN detected in latents: C:\\train\\img\\20_char\\001.png\n",
    "  File \"C:\\lora\\lora-scripts\\scripts\\stable\\library\\train_util.py\", line 2592, in cache_batch_latents\n"
    "    raise RuntimeError(f\"NaN detected in latents: {info.absolute_path}\")\n"
    "RuntimeError: NaN detected in latents: C:\\aa\\image\\40_aa\\1.png\n",
])
def test_nan_latents_without_the_word_sdxl_are_the_vae_in_half_precision(host, log):
    assert _top(host, log).signature_id == "model.sdxl_vae_fp16_nan"


def test_nan_latents_of_an_sd1_trainer_are_not_blamed_on_the_sdxl_vae(host):
    log = ("Traceback (most recent call last):\n  File \"D:\\kohya_ss\\sd-scripts\\train_network.py\", line 1115, in "
           "<module>\n    trainer.train(args)\n  File \"D:\\kohya_ss\\sd-scripts\\library\\train_util.py\", line 2428, "
           "in cache_batch_latents\n    raise RuntimeError(f\"NaN detected in latents: {info.absolute_path}\")\n"
           "RuntimeError: NaN detected in latents: D:\\lora\\img\\10_x\\a.jpg\n")
    assert [d.signature_id for d in diagnose_text(log, host=host).diagnoses] == []


def test_json_dataset_config_gets_json_rules_not_toml_quoting(host):
    log = ("                    ERROR    Error on parsing JSON config file. Please check the format. / JSON 形式の設定"
           "ファイルの読み込みに失敗しました。文法が正しいか確認してください。: C:\\lora\\dataset.json   config_util.py:687\n"
           "json.decoder.JSONDecodeError: Invalid \\escape: line 5 column 23 (char 81)\n")
    d = _top(host, log)
    assert d.signature_id == "config.dataset_toml_syntax"
    assert any("JSON" in step for step in d.fix) and not any("single quotes" in step for step in d.fix)


@pytest.mark.parametrize("message", [
    "expected int for dictionary value @ data['datasets'][0]['subsets'][0]['num_repeats']",
    "required key not provided @ data['datasets'][0]['subsets'][0]['image_dir']",
    "expected float for dictionary value @ data['general']['validation_split']",
])
def test_voluptuous_type_and_missing_key_errors_name_a_cause(host, message):
    log = f"Invalid user config / ユーザ設定の形式が正しくないようです\nvoluptuous.error.MultipleInvalid: {message}\n"
    assert _top(host, log).signature_id == "config.dataset_toml_invalid_value"
