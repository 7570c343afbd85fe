"""The races of everyday git maintenance log at DEBUG, damage still at WARNING: a .tmp- pack renamed
away after the scan saw it, a pack or multi-pack-index deleted between a stat and its open."""

from __future__ import annotations

import logging
import shutil

import damage
import odb

FAKE = "0" * 39 + "1"  # an id no fixture holds: a lookup for it asks every pack


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_pack_gone_between_the_scan_and_its_check_is_debug(repo_copy, caplog):
    """git repack writes .tmp-PID-pack-*.pack and .idx, then renames them: a scan can see the
    temporary names, and the first use finds them gone."""
    repo = repo_copy("midx")
    _, outside = damage.midx_packs(repo.objects_dir)
    tmp_pack = outside[0].with_name(".tmp-4242-" + outside[0].name)
    shutil.copy(outside[0], tmp_pack)
    shutil.copy(outside[0].with_suffix(".idx"), tmp_pack.with_suffix(".idx"))
    caplog.set_level(logging.DEBUG, logger="odb")
    with odb.open(repo.path) as store:
        tmp_pack.unlink()  # renamed into place by git, say
        tmp_pack.with_suffix(".idx").unlink()
        try:
            store.read(FAKE)
        except odb.ObjectNotFound:
            pass
        assert sorted(store) == repo.git.ids()
    assert warnings_of(caplog) == []
    assert any("skipping pack .tmp-4242-" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)


def test_midx_gone_between_its_stat_and_its_load_is_debug(repo_copy, caplog, monkeypatch):
    repo = repo_copy("midx")
    caplog.set_level(logging.DEBUG, logger="odb")

    def vanished(self, path, fmt):
        raise FileNotFoundError(2, "No such file or directory", str(path))

    monkeypatch.setattr("odb.pack.backend.MultiPackIndex.__init__", vanished)
    with odb.open(repo.path) as store:
        assert sorted(store) == repo.git.ids()
    assert warnings_of(caplog) == []
    assert any("ignoring the multi-pack-index" in r.getMessage() for r in caplog.records)


def test_damage_is_still_a_warning(repo_copy, caplog):
    repo = repo_copy("midx")
    _, outside = damage.midx_packs(repo.objects_dir)
    damage.truncate(outside[0].with_suffix(".idx"), 100)
    damage.truncate(damage.midx_path(repo.objects_dir), 100)
    with odb.open(repo.path) as store:
        list(store)
    messages = warnings_of(caplog)
    assert any("skipping pack" in m for m in messages) and any("multi-pack-index" in m for m in messages)
