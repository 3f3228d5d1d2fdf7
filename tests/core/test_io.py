"""Reading files, pairing folders by name, atomic writes."""

import os
import sys

import numpy as np
import pytest
import tifffile

from napari_segqc.core.errors import SegQCError
from napari_segqc.core.io import pair_files, read_image, write_text, write_tiff


def test_pairs_folders_by_name(tmp_path):
    for side in ("gt", "pred"):
        (tmp_path / side).mkdir()
        for name in ("b", "a"):
            tifffile.imwrite(tmp_path / side / f"{name}.tif", np.zeros((4, 4), np.uint16))
    (tmp_path / "pred" / ".hidden.tif").write_bytes(b"")
    pairs = pair_files(tmp_path / "gt", tmp_path / "pred")
    assert [p[0] for p in pairs] == ["a", "b"]
    assert pairs[0][1] == tmp_path / "gt" / "a.tif"


def test_unpaired_names_are_listed(tmp_path):
    for side, names in (("gt", ["a", "b"]), ("pred", ["a", "c"])):
        (tmp_path / side).mkdir()
        for name in names:
            tifffile.imwrite(tmp_path / side / f"{name}.tif", np.zeros((4, 4), np.uint16))
    with pytest.raises(SegQCError, match=r"no prediction for b; no ground truth for c"):
        pair_files(tmp_path / "gt", tmp_path / "pred")


def test_file_and_folder_mixed_or_missing(tmp_path):
    f = tmp_path / "a.tif"
    tifffile.imwrite(f, np.zeros((4, 4), np.uint16))
    with pytest.raises(SegQCError, match="both be files or both be folders"):
        pair_files(f, tmp_path)
    with pytest.raises(SegQCError, match="no such file"):
        pair_files(tmp_path / "nope", f)


def test_corrupt_and_pickled_files_are_refused(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(SegQCError, match="cannot be read"):
        read_image(bad)
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(SegQCError, match="cannot be read"):
        read_image(pickled)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / "out" / "map.tif"
    write_tiff(target, np.arange(12, dtype=np.float32).reshape(3, 4))
    assert np.array_equal(tifffile.imread(target), np.arange(12).reshape(3, 4))

    class Boom(Exception):
        pass

    def failing(_):
        raise Boom

    from napari_segqc.core.io import write_atomic

    with pytest.raises(Boom):
        write_atomic(tmp_path / "out" / "report.json", failing)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["map.tif"]
    write_text(tmp_path / "out" / "report.json", "{}")
    assert (tmp_path / "out" / "report.json").read_text() == "{}"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_written_files_follow_the_umask_not_temp_file_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        mode = write_text(tmp_path / "report.json", "{}").stat().st_mode & 0o777
    finally:
        os.umask(old)
    assert mode == 0o644  # readable by others, as any file the user creates
