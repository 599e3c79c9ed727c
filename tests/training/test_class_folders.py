"""training.class_folders: the split laid out as <split>/<dx>/ folders, linked or copied."""

from __future__ import annotations

import pandas as pd
import pytest

from training.class_folders import FolderExportError, export_class_folders, main
from training.data import SPLITS, image_path


def _tree(root) -> pd.DataFrame:
    """Every exported file as (split, dx, image_id, path)."""
    rows = [
        {"split": path.parts[-3], "dx": path.parts[-2], "image_id": path.stem, "path": path}
        for path in sorted(root.glob("*/*/*"))
    ]
    return pd.DataFrame(rows)


def test_every_image_lands_in_its_split_and_class_once_as_a_link(tiny_dataset, tiny_split, tmp_path):
    out = tmp_path / "folders"
    counts = export_class_folders(tiny_dataset["data_dir"], tiny_split["path"], out)

    tree = _tree(out)
    expected = tiny_split["table"][["split", "dx", "image_id"]].sort_values("image_id").reset_index(drop=True)
    got = tree[["split", "dx", "image_id"]].sort_values("image_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected)  # every image once, in the split the table says
    assert sum(counts.values()) == len(expected)
    assert {path.name for path in out.iterdir()} == set(SPLITS)
    for row in tree.itertuples():
        assert row.path.is_symlink()
        assert row.path.resolve() == image_path(tiny_dataset["data_dir"], row.image_id).resolve()


def test_copy_writes_real_files_with_the_same_bytes(tiny_dataset, tiny_split, tmp_path):
    out = tmp_path / "copied"
    export_class_folders(tiny_dataset["data_dir"], tiny_split["path"], out, copy=True)

    row = next(_tree(out).itertuples())
    assert not row.path.is_symlink()
    assert row.path.read_bytes() == image_path(tiny_dataset["data_dir"], row.image_id).read_bytes()


def test_a_folder_that_is_not_empty_is_refused_and_left_as_it_was(tiny_dataset, tiny_split, tmp_path):
    out = tmp_path / "used"
    (out / "train").mkdir(parents=True)
    (out / "train" / "notes.txt").write_text("mine")

    with pytest.raises(FolderExportError, match="not an empty folder"):
        export_class_folders(tiny_dataset["data_dir"], tiny_split["path"], out)
    assert [p.name for p in out.rglob("*")] == ["train", "notes.txt"]


def test_a_missing_image_stops_the_export_before_anything_is_written(tiny_dataset, tiny_split, tmp_path, capsys):
    partial = tmp_path / "partial_data"
    (partial / "images").mkdir(parents=True)  # the metadata's images are elsewhere
    out = tmp_path / "never"

    with pytest.raises(SystemExit) as stopped:
        main(["--data-dir", str(partial), "--split-file", str(tiny_split["path"]), "--out", str(out)])

    assert stopped.value.code == 2
    assert "are not in" in capsys.readouterr().err
    assert not out.exists()
