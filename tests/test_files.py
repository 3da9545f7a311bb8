"""Stage folders: atomic writes, and resuming only work made with the same configuration."""

from __future__ import annotations

from runtime_semantics.files import atomic_write_text, prepare_resumable_dir


def test_changed_settings_start_afresh_and_equal_settings_keep_finished_work(tmp_path):
    out = tmp_path / "stage"
    assert not prepare_resumable_dir(out, "config-a")
    (out / "episodes").mkdir()
    (out / "episodes" / "x.trace.json").write_text("{}")
    assert prepare_resumable_dir(out, "config-a")
    assert (out / "episodes" / "x.trace.json").exists()
    assert not prepare_resumable_dir(out, "config-b")
    assert not (out / "episodes").exists() and (out / "fingerprint.txt").read_text() == "config-b\n"


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    atomic_write_text(tmp_path / "a" / "b.txt", "x")
    atomic_write_text(tmp_path / "a" / "b.txt", "y")
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.txt"] and (tmp_path / "a" / "b.txt").read_text() == "y"
