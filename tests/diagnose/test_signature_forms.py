"""`[[signature.match.also]]`: one cause, several printed forms (an older wording, another exception)."""

from __future__ import annotations

from lora_doctor.diagnose.match import diagnose_text, load_signatures

SIG = '''
[[signature]]
id = "mine.caption_bytes"
title = "A caption file is not UTF-8"
fix = ["Save it as UTF-8."]

[signature.match]
log_any = ['illegal char in file']

[[signature.match.also]]
exception = ["UnicodeDecodeError"]
message = "'utf-8' codec can't decode"
frame = 'read_caption'
why = "Written after the form's table, so TOML puts it there; it is the signature's."

[[signature.examples]]
log = "ERROR illegal char in file (not UTF-8): a.txt"

[[signature.examples]]
log = """Traceback (most recent call last):
  File "/sd/library/train_util.py", line 795, in read_caption
    lines = f.readlines()
UnicodeDecodeError: 'utf-8' codec can't decode byte 0x93 in position 15: invalid start byte
"""
'''

OLD_FORM = """Traceback (most recent call last):
  File "/sd/library/train_util.py", line 795, in read_caption
    lines = f.readlines()
UnicodeDecodeError: 'utf-8' codec can't decode byte 0x82 in position 0: invalid start byte
"""


def ids(text, folder):
    return [d.signature_id for d in diagnose_text(text, plugin_dirs=[folder]).diagnoses]


def test_either_form_names_the_cause_and_the_rest_must_hold(tmp_path):
    (tmp_path / "mine.toml").write_text(SIG, encoding="utf-8")
    assert "mine.caption_bytes" in ids("WARNING illegal char in file (not UTF-8): x.txt\n", tmp_path)
    assert "mine.caption_bytes" in ids(OLD_FORM, tmp_path)
    elsewhere = OLD_FORM.replace("read_caption", "load_prompts")
    assert "mine.caption_bytes" not in ids(elsewhere, tmp_path)  # the form's frame is not there


def test_form_keys_are_validated_and_hoisted(tmp_path):
    (tmp_path / "mine.toml").write_text(SIG, encoding="utf-8")
    db, _ = load_signatures(plugin_dirs=[tmp_path])
    sig = db.get("mine.caption_bytes")
    assert sig is not None and len(sig.forms) == 2 and sig.why.startswith("Written after")
    assert not [e for e in db.errors if "mine.toml" in str(e)]

    bad = SIG.replace('frame = \'read_caption\'', "log_any = ['x']")
    (tmp_path / "mine.toml").write_text(bad, encoding="utf-8")
    db, _ = load_signatures(plugin_dirs=[tmp_path])
    assert db.get("mine.caption_bytes") is None
    assert any("match.also: unknown key(s) log_any" in str(e) for e in db.errors)


def test_the_builtin_database_uses_forms_and_errors_test_stays_clean():
    db, _ = load_signatures(strict=True)
    assert any(s.also for s in db.signatures)
    assert not [e for e in db.errors if e.fatal]


def test_a_form_with_a_frame_never_stands_alone_one_without_does(tmp_path):
    """The exception line pasted alone (no traceback): the read_caption form needs its frame, so the
    bare decode error names nothing; a form that is only a message would be named."""
    (tmp_path / "mine.toml").write_text(SIG, encoding="utf-8")
    alone = OLD_FORM.splitlines()[-1] + "\n"
    assert "mine.caption_bytes" not in ids(alone, tmp_path)
    assert "mine.caption_bytes" not in ids(alone.split(": ", 1)[1], tmp_path)
    (tmp_path / "mine.toml").write_text(SIG.replace("frame = 'read_caption'\n", ""), encoding="utf-8")
    assert "mine.caption_bytes" in ids(alone, tmp_path)
    assert "mine.caption_bytes" in ids(alone.split(": ", 1)[1], tmp_path)  # the message without its type
    assert "mine.caption_bytes" in ids(alone.split(": ", 1)[1].upper(), tmp_path)  # in another letter case
