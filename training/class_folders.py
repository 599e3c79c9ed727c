"""Lay the split out as one folder per split and class: ``<out>/<split>/<dx>/<image_id>.jpg``.

The training pipeline reads the metadata directly and never needs this; it is for
tools that expect a folder per class (``keras.utils.image_dataset_from_directory``,
an image viewer, a colleague's notebook), with the lesion-grouped split kept, so
their evaluations see the same test pictures as ours.

    python -m training.class_folders --data-dir ../shared/data/ham10000 --out training_runs/ham10000_folders

Symbolic links by default (the dataset is not copied; CC BY-NC 4.0 applies to it
wherever it lies); ``--copy`` writes real files.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections import Counter
from pathlib import Path

from training.data import DEFAULT_SPLIT_FILE, image_path, read_split


class FolderExportError(Exception):
    """The export cannot start; the message says why and what to do."""


def export_class_folders(data_dir: Path | str, split_file: Path | str, out: Path | str, copy: bool = False) -> Counter:
    """Link (or copy) every image of the split into ``out``; return the count per (split, dx).

    ``out`` must not exist or be empty: a second export on top of an older split could
    leave a picture in two splits. Every source image is checked before anything is
    written, so a missing one leaves no half-made tree.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FolderExportError(f"{out} already exists and is not an empty folder; choose a new one")
    split = read_split(split_file)
    sources = {row.image_id: image_path(data_dir, row.image_id) for row in split.itertuples()}
    missing = [image_id for image_id, path in sources.items() if not path.is_file()]
    if missing:
        raise FolderExportError(
            f"{len(missing)} images of the split are not in {data_dir} (first: {missing[0]}); check --data-dir"
        )

    counts: Counter = Counter()
    for row in split.itertuples():
        folder = out / row.split / row.dx
        folder.mkdir(parents=True, exist_ok=True)
        source = sources[row.image_id].resolve()
        target = folder / source.name
        if copy:
            shutil.copyfile(source, target)
        else:
            os.symlink(source, target)
        counts[(row.split, row.dx)] += 1
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Export the lesion-grouped split as class folders.")
    parser.add_argument("--data-dir", default="../shared/data/ham10000")
    parser.add_argument("--split-file", default=str(DEFAULT_SPLIT_FILE))
    parser.add_argument("--out", required=True, help="a new or empty folder")
    parser.add_argument("--copy", action="store_true", help="copy the images instead of linking them")
    args = parser.parse_args(argv)
    try:
        counts = export_class_folders(args.data_dir, args.split_file, args.out, copy=args.copy)
    except FolderExportError as error:
        parser.exit(2, f"error: {error}\n")
    for split_name in sorted({name for name, _ in counts}):
        per_class = ", ".join(f"{dx} {n}" for (name, dx), n in sorted(counts.items()) if name == split_name)
        print(f"{split_name}: {per_class}")
    print(f"{sum(counts.values())} images {'copied' if args.copy else 'linked'} into {args.out}")


if __name__ == "__main__":
    main()
