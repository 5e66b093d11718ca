"""Caption checks on real caption files: extension mismatch, cp932, empty, BOM, length, tags."""

from __future__ import annotations

import pytest

from support.dataset_builders import caption, image, lineart_folder
from lora_doctor.dataset.captions import estimate_tokens, guess_encoding, tag_table
from lora_doctor.model import Severity
from lora_doctor.plugins import dataset as plugin
from lora_doctor.testing import make_context, run_check


def captions(tmp_path, *options):
    ctx = make_context(["accelerate", "launch", "train_network.py", "--train_data_dir=train", "--resolution=64",
                        *options], cwd=tmp_path)
    return run_check(plugin, "dataset.captions", ctx)


def test_txt_captions_with_default_caption_extension_is_a_mismatch_with_the_fix(tmp_path):
    lineart_folder(tmp_path / "train" / "1_lineart", ext=".txt")
    findings = captions(tmp_path)  # --caption_extension defaults to .caption
    hit = [f for f in findings if f.cause == "dataset.caption_extension_mismatch"]
    assert hit and hit[0].severity == Severity.ERROR
    assert "8 images have .txt captions" in hit[0].summary
    assert hit[0].fix_command.endswith("--caption_extension=.txt")
    assert not [f for f in captions(tmp_path, "--caption_extension=.txt") if f.severity >= Severity.WARN]


def test_missing_captions_say_what_sd_scripts_uses_instead(tmp_path):
    folder = tmp_path / "train" / "2_sks dog"
    lineart_folder(folder, n=3, text="sks dog, grass")
    image(folder / "nocap.png", seed=50)
    findings = captions(tmp_path, "--caption_extension=.txt")
    hit = [f for f in findings if f.cause == "dataset.caption_missing"][0]
    assert hit.severity == Severity.WARN
    assert "1 of 4 images" in hit.summary and "'sks dog'" in hit.summary and "nocap.png" in hit.summary


def test_cp932_caption_names_the_encoding_and_the_conversion_command_works(tmp_path):
    folder = tmp_path / "train" / "1_x"
    lineart_folder(folder, n=2)
    bad = caption(image(folder / "jp.png", seed=9), "猫、かわいい、笑顔".encode("cp932"))
    findings = captions(tmp_path, "--caption_extension=.txt")
    hit = [f for f in findings if f.cause == "dataset.caption_not_utf8"][0]
    assert hit.severity == Severity.ERROR and "cp932 (Shift-JIS" in hit.summary and "jp.txt" in hit.summary
    # the printed command really converts the file (run it, then the finding is gone)
    import shlex
    import subprocess
    import sys

    argv = shlex.split(hit.fix_command)
    assert argv[0].endswith(("python", "python.exe"))  # the training interpreter (any Python 3 would do)
    subprocess.run([sys.executable, *argv[1:]], check=True, timeout=30)
    assert bad.read_text(encoding="utf-8") == "猫、かわいい、笑顔"
    assert not [f for f in captions(tmp_path, "--caption_extension=.txt") if f.cause == "dataset.caption_not_utf8"]


def test_guess_encoding_tells_common_legacy_encodings_apart():
    assert guess_encoding("こんにちは、猫".encode("cp932")) == "cp932"
    assert guess_encoding("一个女孩，长发".encode("gbk")) == "gbk"
    assert guess_encoding("café, crème brûlée".encode("cp1252")) == "cp1252"
    assert guess_encoding("a girl".encode("utf-16")) == "utf-16"
    assert guess_encoding("長髮女孩，微笑".encode("big5")) == "big5"


def test_empty_blank_bom_and_multiline_captions(tmp_path):
    folder = tmp_path / "train" / "1_x"
    caption(image(folder / "empty.png", seed=1), b"")
    caption(image(folder / "blank.png", seed=2), "\n")
    caption(image(folder / "bom.png", seed=3), "\ufefftrigger, smile")
    caption(image(folder / "multi.png", seed=4), "first line\nsecond line\n")
    findings = captions(tmp_path, "--caption_extension=.txt")
    empty = [f for f in findings if f.cause == "dataset.caption_empty"]
    assert any(f.severity == Severity.ERROR and "empty.txt" in f.summary for f in empty)
    assert any(f.severity == Severity.WARN and "blank.txt" in f.summary for f in empty)
    assert any("BOM" in f.summary and "bom.txt" in f.summary and "utf-8-sig" in f.fix_command for f in findings)
    assert any("more than one line" in f.summary and "multi.txt" in f.summary for f in findings)


def test_long_captions_warn_unless_max_token_length_covers_them(tmp_path):
    folder = tmp_path / "train" / "1_x"
    long_text = ", ".join(f"detailed tag{i} description" for i in range(20))
    caption(image(folder / "long.png", seed=1), long_text)
    caption(image(folder / "short.png", seed=2), "a cat")
    hit = [f for f in captions(tmp_path, "--caption_extension=.txt") if "longer than 75 tokens" in f.summary]
    assert hit and "long.txt" in hit[0].summary and "short" not in hit[0].summary
    assert "--max_token_length=150" in hit[0].fix_command
    assert 90 < estimate_tokens(long_text) < 150  # CLIP: about 5 tokens per item
    assert not [f for f in captions(tmp_path, "--caption_extension=.txt", "--max_token_length=150")
                if "tokens" in f.summary]


def test_tag_table_finds_the_trigger_word_and_near_duplicates(tmp_path):
    folder = tmp_path / "train" / "1_x"
    texts = ["ohwx, long hair, smile", "ohwx, long_hair, outdoors", "ohwx, Long Hair, smile"]
    for i, text in enumerate(texts):
        caption(image(folder / f"{i}.png", seed=i), text)
    findings = captions(tmp_path, "--caption_extension=.txt")
    table = [f for f in findings if f.summary.startswith("captions:")][0]
    assert "trigger word 'ohwx'" in table.summary
    assert "smile (2)" in table.detail
    near = [f for f in findings if "spelled more than one way" in f.summary][0]
    assert "Long Hair / long hair / long_hair" in near.summary


def test_token_estimate_is_in_the_right_range():
    # CLIP counts these at 1 token per common word/punctuation
    assert 8 <= estimate_tokens("a photo of a cat, sitting on a sofa") <= 12
    assert tag_table(["a, b", "b, c"]).in_every == ["b"]


# -- caption_extension without the dot (sd-scripts adds it since v0.6.5) -------------------------

NEW_TRAIN_UTIL = ("class DreamBoothSubset:\n    def __init__(self, caption_extension):\n"
                  "        if caption_extension and not caption_extension.startswith('.'):\n"
                  "            caption_extension = '.' + caption_extension\n")
OLD_TRAIN_UTIL = "class DreamBoothSubset:\n    def __init__(self, caption_extension):\n        pass\n"


def _checkout(tmp_path, source: str | None):
    if source is not None:
        (tmp_path / "library").mkdir(exist_ok=True)
        (tmp_path / "library" / "train_util.py").write_text(source, encoding="utf-8")


@pytest.mark.parametrize("source, known", [(NEW_TRAIN_UTIL, True), (None, False)])
def test_caption_extension_without_dot_is_info_when_sd_scripts_adds_it(tmp_path, source, known):
    """Issue 12 item 6: `--caption_extension=txt` found every caption in a real run (v0.6.5 and later)."""
    _checkout(tmp_path, source)
    lineart_folder(tmp_path / "train" / "1_lineart", ext=".txt")
    findings = captions(tmp_path, "--caption_extension=txt")
    assert not [f for f in findings if f.severity >= Severity.WARN], [f.summary for f in findings]
    note = [f for f in findings if "no leading dot" in f.summary]
    assert len(note) == 1 and note[0].severity == Severity.INFO
    assert ("could not be read" in note[0].summary) is not known


def test_caption_extension_without_dot_is_still_an_error_for_a_checkout_older_than_v0_6_5(tmp_path):
    _checkout(tmp_path, OLD_TRAIN_UTIL)
    lineart_folder(tmp_path / "train" / "1_lineart", ext=".txt")
    hit = [f for f in captions(tmp_path, "--caption_extension=txt") if f.cause == "dataset.caption_extension_mismatch"]
    assert hit and hit[0].severity == Severity.ERROR and "older than v0.6.5" in hit[0].detail
    assert hit[0].fix_command.endswith("--caption_extension=.txt") and "--caption_extension=txt" not in hit[0].fix_command


def _toml_captions(tmp_path, general: str, *options):
    lineart_folder(tmp_path / "data" / "1_lineart", ext=".txt")
    cfg = tmp_path / "dataset.toml"
    cfg.write_text(f"[general]\nshuffle_caption = true\n{general}\n[[datasets]]\nresolution = 64\n"
                   "[[datasets.subsets]]\nimage_dir = 'data/1_lineart'\nnum_repeats = 1\n", encoding="utf-8")
    ctx = make_context(["accelerate", "launch", "train_network.py", f"--dataset_config={cfg}", *options], cwd=tmp_path)
    return run_check(plugin, "dataset.captions", ctx)


def test_caption_extension_set_in_the_dataset_toml_is_fixed_in_the_toml_not_on_the_command_line(tmp_path):
    """Issue 12 item 5: the fix "add --caption_extension=.txt" changed nothing, because the TOML wins."""
    hit = [f for f in _toml_captions(tmp_path, "caption_extension = '.caption'", "--caption_extension=.txt")
           if f.cause == "dataset.caption_extension_mismatch"]
    assert hit and hit[0].severity == Severity.ERROR
    assert "dataset.toml [general], line 3" in hit[0].fix and 'caption_extension = ".txt"' in hit[0].fix
    assert hit[0].fix_command == ""  # a command-line option would not win over the TOML
    assert "caption_extension in dataset.toml [general] is .caption" in hit[0].summary


def test_caption_extension_txt_in_the_dataset_toml_reads_txt_files(tmp_path):
    _checkout(tmp_path, NEW_TRAIN_UTIL)
    findings = _toml_captions(tmp_path, "caption_extension = 'txt'")
    assert not [f for f in findings if f.severity >= Severity.WARN], [f.summary for f in findings]


def test_caption_extension_from_the_command_line_still_gets_a_command_fix_with_a_toml(tmp_path):
    hit = [f for f in _toml_captions(tmp_path, "", "--caption_extension=.caption")
           if f.cause == "dataset.caption_extension_mismatch"]
    assert hit and hit[0].fix_command.endswith("--caption_extension=.txt")


# -- re-encoding: each source encoding is read as itself (a fix that always decodes cp932 fails) ----

PS_CODECS = {932: "cp932", 936: "gbk", 950: "cp950", 949: "cp949", 1252: "cp1252", 1200: "utf-16", 65001: "utf-8-sig"}


@pytest.mark.parametrize("text, encoding, written", [
    ("猫、かわいい、笑顔", "cp932", "猫、かわいい、笑顔".encode("cp932")),
    ("一个女孩，长发，微笑", "gbk", "一个女孩，长发，微笑".encode("gbk")),
    ("長髮女孩，微笑", "big5", "長髮女孩，微笑".encode("big5")),
    ("1girl, smile, 笑顔", "utf-16", "1girl, smile, 笑顔".encode("utf-16")),  # Notepad's "Unicode": a BOM + UTF-16LE
    ("café, crème brûlée, naïve", "cp1252", "café, crème brûlée, naïve".encode("cp1252")),
], ids=["cp932", "gbk", "big5", "utf-16", "cp1252"])
def test_reencoding_fix_reads_each_source_encoding_as_itself(tmp_path, text, encoding, written):
    import re
    import shlex
    import subprocess
    import sys

    folder = tmp_path / "train" / "1_x"
    lineart_folder(folder, n=1)
    bad = caption(image(folder / "legacy.png", seed=9), written)
    hit = [f for f in captions(tmp_path, "--caption_extension=.txt") if f.cause == "dataset.caption_not_utf8"][0]
    assert hit.facts["encoding"] == encoding
    # PowerShell 5.1: a whole-file read with the source code page, a UTF-8 write without BOM, no pipe into itself
    ps = hit.fix.split("In PowerShell", 1)[1]
    assert "Get-Content" not in ps and "Set-Content" not in ps and "|" not in ps
    assert "New-Object Text.UTF8Encoding $false" in ps and str(bad) in ps
    page = int(re.search(r"GetEncoding\((\d+)\)", ps).group(1))
    assert written.decode(PS_CODECS[page]) == text  # that code page decodes this file to the original text
    # the printed Python command, run for real, leaves UTF-8 without BOM holding the original text
    argv = shlex.split(hit.fix_command)
    subprocess.run([sys.executable, *argv[1:]], check=True, timeout=30)
    assert bad.read_bytes() == text.encode("utf-8")
    assert not [f for f in captions(tmp_path, "--caption_extension=.txt") if f.severity >= Severity.WARN]


def test_bom_fix_removes_the_bom_in_python_and_powershell(tmp_path):
    import shlex
    import subprocess
    import sys

    folder = tmp_path / "train" / "1_x"
    lineart_folder(folder, n=1)
    bom = caption(image(folder / "bom.png", seed=3), "\ufefftrigger, smile")
    hit = [f for f in captions(tmp_path, "--caption_extension=.txt") if "BOM" in f.summary][0]
    assert "GetEncoding(65001)" in hit.fix and "New-Object Text.UTF8Encoding $false" in hit.fix
    subprocess.run([sys.executable, *shlex.split(hit.fix_command)[1:]], check=True, timeout=30)
    assert bom.read_bytes() == b"trigger, smile"


def test_caption_extension_txt_in_the_toml_of_an_old_checkout_is_fixed_in_the_toml(tmp_path):
    """The issue's case on a checkout older than v0.6.5: the fix goes to the TOML line, with the dot."""
    _checkout(tmp_path, OLD_TRAIN_UTIL)
    hit = [f for f in _toml_captions(tmp_path, "caption_extension = 'txt'") if f.cause == "dataset.caption_extension_mismatch"]
    assert hit and 'In dataset.toml [general], line 3, write caption_extension = ".txt"' in hit[0].fix
    assert hit[0].fix_command == ""
