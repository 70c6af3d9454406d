"""The shared file helpers: checksummed writes (mode, leftover temporaries) and strict YAML merges."""

from __future__ import annotations

import os
import stat
import time

import pytest
import yaml

from hybrid import checksummed
from hybrid.strict_yaml import ConfigFileError, parse_yaml


def _write_under_umask(tmp_path, umask: int) -> tuple[int, int]:
    """(mode of a checksummed write, mode of a plain open) with the process umask set to `umask`."""
    previous = os.umask(umask)
    try:
        checksummed.write(tmp_path / "checkpoint.pt", {"epoch": 1})
        with open(tmp_path / "plain", "w"):
            pass
    finally:
        os.umask(previous)
    return (stat.S_IMODE((tmp_path / "checkpoint.pt").stat().st_mode),
            stat.S_IMODE((tmp_path / "plain").stat().st_mode))


@pytest.mark.parametrize(("umask", "mode"), [(0o002, 0o664), (0o077, 0o600), (0o022, 0o644)])
def test_a_checksummed_file_gets_the_mode_a_plain_open_gives(tmp_path, umask, mode):
    written, plain = _write_under_umask(tmp_path, umask)
    assert written == plain == mode
    assert checksummed.read(tmp_path / "checkpoint.pt") == {"epoch": 1}
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_rewrite_takes_the_current_umask_too(tmp_path):
    _write_under_umask(tmp_path, 0o077)
    written, _ = _write_under_umask(tmp_path, 0o002)
    assert written == 0o664


def _age(path, seconds):
    old = time.time() - seconds
    os.utime(path, (old, old))


def test_remove_stale_temps_removes_exactly_the_old_temporaries_of_the_target(tmp_path):
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"the checkpoint")
    stale = [tmp_path / ".checkpoint.pt.abc_1234.tmp", tmp_path / ".checkpoint.pt.zzzzzzzz.tmp"]
    fresh = tmp_path / ".checkpoint.pt.fresh123.tmp"  # a write in progress elsewhere
    others = [
        tmp_path / ".checkpoint.pt.bak.abcd1234.tmp",  # the temporary of another target
        tmp_path / ".checkpoint.pt.short.tmp",  # not 8 random characters
        tmp_path / ".checkpoint.pt.ABCD1234.tmp",  # not mkstemp's alphabet
        tmp_path / "checkpoint.pt.abcd1234.tmp",  # no leading dot
        tmp_path / ".checkpoint.pt.abcd1234.tmp.keep",
        tmp_path / ".other.pt.abcd1234.tmp",
        tmp_path / "result.json",
    ]
    for path in [*stale, fresh, *others]:
        path.write_bytes(b"x" * 10)
    for path in [target, *stale, *others]:
        _age(path, 3600)
    (tmp_path / ".checkpoint.pt.dir12345.tmp").mkdir()  # not a regular file
    _age(tmp_path / ".checkpoint.pt.dir12345.tmp", 3600)

    removed = checksummed.remove_stale_temps(target)

    assert removed == sorted(stale)
    assert not any(path.exists() for path in stale)
    assert all(path.exists() for path in [target, fresh, *others])
    assert (tmp_path / ".checkpoint.pt.dir12345.tmp").is_dir()
    assert checksummed.remove_stale_temps(target) == []
    assert checksummed.remove_stale_temps(target, min_age_s=0) == [fresh]


def test_remove_stale_temps_finds_what_a_killed_write_leaves(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint.pt"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", killed)
    with pytest.raises(KeyboardInterrupt):
        checksummed.write(target, {"epoch": 1})
    assert not list(tmp_path.iterdir())  # an exception cleans up after itself...
    monkeypatch.undo()
    # ... a kill does not: the temporary write() would have left, by its own name rule
    fd, leftover = checksummed._create_temp(target)
    os.close(fd)
    _age(leftover, 120)
    assert checksummed.remove_stale_temps(target) == [leftover]
    assert not list(tmp_path.iterdir())


def test_remove_stale_temps_of_a_missing_folder_is_empty(tmp_path):
    assert checksummed.remove_stale_temps(tmp_path / "absent" / "checkpoint.pt") == []


MERGES = {
    "one anchor": "base: &base {lr: 0.1, epochs: 3}\nrun:\n  <<: *base\n  seed: 1\n",
    "a list of anchors": "a: &a {x: 1, y: 2}\nb: &b {x: 3, z: 4}\nrun:\n  <<: [*a, *b]\n",
    "an override": "base: &base {lr: 0.1, epochs: 3}\nrun:\n  <<: *base\n  lr: 0.5\n",
    "an override before the merge": "base: &base {lr: 0.1}\nrun:\n  lr: 0.5\n  <<: *base\n",
    "a merge of a merged mapping": ("base: &base {lr: 0.1, epochs: 3}\nmid: &mid\n  <<: *base\n  lr: 0.2\n"
                                     "top:\n  <<: *mid\n  epochs: 9\n"),
    # a mapping merged (and flattened in place) before the loader reaches it where it stands
    "merged before it is read": ("x:\n  deep:\n    m: &m\n      <<: &b {a: 1}\n      a: 2\n"
                                 "y:\n  <<: *m\n"),
}


@pytest.mark.parametrize("text", MERGES.values(), ids=MERGES.keys())
def test_merge_keys_read_as_safeloader_reads_them(text):
    assert parse_yaml(text) == yaml.safe_load(text)


def test_merges_follow_pyyaml_semantics():
    assert parse_yaml(MERGES["one anchor"])["run"] == {"lr": 0.1, "epochs": 3, "seed": 1}
    assert parse_yaml(MERGES["a list of anchors"])["run"] == {"x": 1, "y": 2, "z": 4}  # the earlier wins
    assert parse_yaml(MERGES["an override"])["run"] == {"lr": 0.5, "epochs": 3}  # explicit wins
    assert parse_yaml(MERGES["an override before the merge"])["run"] == {"lr": 0.5}
    assert parse_yaml(MERGES["a merge of a merged mapping"])["top"] == {"lr": 0.2, "epochs": 9}


@pytest.mark.parametrize("text", [
    "base: &base {lr: 0.1}\nrun:\n  <<: *base\n  seed: 1\n  seed: 2\n",
    "base: &base {lr: 0.1}\nrun:\n  seed: 1\n  <<: *base\n  seed: 2\n",
    "base: &base {lr: 0.1}\nrun:\n  lr: 0.5\n  seed: 1\n  seed: 2\n  <<: *base\n",
])
def test_a_key_written_twice_next_to_a_merge_is_refused_with_its_line(text):
    line = text.splitlines().index("  seed: 2") + 1
    first = text.splitlines().index("  seed: 1") + 1
    with pytest.raises(ConfigFileError, match=rf"cfg\.yaml: line {line}, column 3: found key 'seed' again "
                                              rf"\(first at line {first}\)"):
        parse_yaml(text, "cfg.yaml")


def test_a_duplicate_inside_a_merged_anchor_is_refused():
    text = "base: &base\n  lr: 0.1\n  lr: 0.2\nrun:\n  <<: *base\n"
    with pytest.raises(ConfigFileError, match=r"line 3, column 3: found key 'lr' again \(first at line 2\)"):
        parse_yaml(text)
