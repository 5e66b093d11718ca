"""The one vocabulary of notable log lines: what the parser, the matcher and the live watcher
(`plugins/watch.py`, `run --stop-on-nan`) all call a NaN loss, a CUDA out-of-memory, a killed
process, the Windows paging file, a rank prefix, colour codes and CJK text.

One definition each, so a line the watcher acts on during a run is a line the post-mortem names
after it (tests/run/test_watch.py checks every form both ways).
"""

from __future__ import annotations

import re

# -- NaN loss ----------------------------------------------------------------------------------
# sd-scripts' progress-bar postfix is `avr_loss=nan` (train_network.py, NetworkTrainer.train:
# `logs = {"avr_loss": avr_loss}; progress_bar.set_postfix(**{**max_mean_logs, **logs})`); older
# scripts and other trainers print `loss=nan`, `loss: NaN`, `current_loss=nan`; C's printf `-nan`.
# Any `…loss=nan` counts (avr_loss, current_loss, val_loss); the literal start keeps gigabyte logs fast.
LOSS_NAN = r"loss\s*[=:]\s*-?nan\b"
LOSS_NAN_RE = re.compile(LOSS_NAN, re.IGNORECASE | re.MULTILINE)


def loss_is_nan(line: str) -> bool:
    """True when a progress or log line reports a NaN loss (`run --stop-on-nan` stops on it, and
    the post-mortem names it: the same regex)."""
    return first_nan(line) >= 0 and LOSS_NAN_RE.search(line) is not None


def may_show_nan(data) -> bool:
    """Cheap pre-test (bytes or str) before looking for a NaN loss in a block of lines."""
    return first_nan(data) >= 0


# How NaN is spelled: Python's float formatting (tqdm's postfix: `avr_loss=nan`, also for numpy and
# torch scalars), pandas/JavaScript (`NaN`), C's printf (`NAN`, `-nan`), and `Nan`. Blocks of
# progress updates (tqdm, overwritten with `\r` or collapsed) are searched for Python's spelling
# only: a gigabyte of progress bars then costs one fast scan, and that is what tqdm prints.
_NAN_SPELLINGS = ("nan", "NaN", "NAN", "Nan")
_NAN_SPELLINGS_B = tuple(w.encode() for w in _NAN_SPELLINGS)
PROGRESS_NAN_SPELLINGS = 1


def first_nan(data, start: int = 0, end: int | None = None, spellings: int = len(_NAN_SPELLINGS)) -> int:
    """Index of the first `nan` (nan, NaN, NAN, Nan; the first `spellings` of them) in data[start:end], or -1."""
    end = len(data) if end is None else end
    words = (_NAN_SPELLINGS_B if isinstance(data, bytes) else _NAN_SPELLINGS)[:spellings]
    first = data.find(words[0], start, end)
    if len(words) > 1 and data.find(words[1][:1], start, end if first < 0 else first) >= 0:  # an `N` at all
        for w in words[1:]:
            i = data.find(w, start, end if first < 0 else first)
            if i >= 0:
                first = i
    return first


# -- out of memory -----------------------------------------------------------------------------
# torch.cuda.OutOfMemoryError's message (c10/cuda/CUDACachingAllocator.cpp) and the CUDA runtime's.
CUDA_OOM = r"CUDA out of memory|CUDA error: out of memory|OutOfMemoryError"
CUDA_OOM_RE = re.compile(CUDA_OOM, re.IGNORECASE)


def is_cuda_oom(line: str) -> bool:
    return CUDA_OOM_RE.search(line) is not None


# -- processes killed, the Windows paging file -------------------------------------------------
KILLED = r"^\s*(?:\S+: line \d+:\s+\d+\s+)?Killed\b|\bOut of memory: Killed process\b|\bKilled process \d+"
OOM_KILLER = r"Out of memory: Killed process|oom-kill|oom_reaper"
# ERROR_COMMITMENT_LIMIT (WinError 1455) as Windows prints it in the languages users paste.
PAGING_FILE_PHRASES = (
    "paging file is too small",  # en
    "fichier de pagination est insuffisant",  # fr
    "Auslagerungsdatei ist zu klein",  # de
    "archivo de paginación es demasiado pequeño",  # es
    "arquivo de paginação é muito pequeno",  # pt
    "file di paging è troppo piccolo",  # it
    "Файл подкачки слишком мал",  # ru
    "页面文件太小",  # zh-CN
    "分頁檔太小",  # zh-TW
    "ページング ファイルが小さすぎ",  # ja
    "페이징 파일이 너무 작",  # ko
)
PAGING_FILE_RE = re.compile("|".join(re.escape(p) for p in PAGING_FILE_PHRASES) + r"|WinError 1455|os error 1455",
                            re.IGNORECASE)
# the scanner's form: the phrases written in Latin script (each names an ASCII word, so a gigabyte
# log is searched only where it holds one); the others are caught line by line (diagnose/exit_marks.py)
PAGING_FILE = "|".join(re.escape(p) for p in PAGING_FILE_PHRASES if re.search(r"[A-Za-z]{4}", p)) \
    + r"|WinError 1455|os error 1455"

# -- the command a front end echoes -----------------------------------------------------------
# kohya_ss GUI: `accelerate launch …` (old), `Executing command: C:\…\venv\Scripts\accelerate.EXE launch …`
LAUNCH_COMMAND = r"(?<!`)(?i:accelerate)(?:\.exe)?\"?[ \t]+launch\b.*\.py"

# Lines every diagnosis may want, whatever the signatures: found by the scanner like signature
# regexes (name -> regex). Code matchers read them as `context.notable[name]`.
NOTABLE = {
    "loss_nan": LOSS_NAN,
    "killed": KILLED,
    "oom_killer": OOM_KILLER,
    "paging_file": PAGING_FILE,
    "cuda_oom": CUDA_OOM,
    "launch_command": LAUNCH_COMMAND,
}
# flags each NOTABLE regex is compiled with (the scanner's case-insensitive fallback covers the rest)
NOTABLE_FLAGS = {"loss_nan": re.IGNORECASE, "paging_file": re.IGNORECASE, "cuda_oom": re.IGNORECASE}


def compiled_notable() -> dict[str, re.Pattern]:
    return {name: re.compile(p, re.MULTILINE | NOTABLE_FLAGS.get(name, 0)) for name, p in NOTABLE.items()}


# -- prefixes and scripts of text -------------------------------------------------------------
# torch.distributed's per-rank prefix (`[rank0]: `, torchrun's `[default0]:`), at a line start or indented.
RANK_RE = re.compile(r"^\[(?:rank|default)(\d+)\]:\s?")
RANK_INDENTED_RE = re.compile(r"^[ \t]*\[(?:rank|default)\d+\]: ?")
# terminal escape sequences: CSI (colours, cursor moves), OSC (titles), two-byte escapes
ANSI_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
CJK_CHARS = "\u3000-\u30ff\u3400-\u9fff\uff00-\uffef"
CJK_RE = re.compile(f"[{CJK_CHARS}]")
CJK_END_RE = re.compile(f"[{CJK_CHARS}]$")
CJK_START_RE = re.compile(f"^[{CJK_CHARS}]")


def strip_rank(line: str) -> str:
    return RANK_RE.sub("", line)
