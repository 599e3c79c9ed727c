"""The command line every ``python -m training.<command> models/<version> --data-dir ...`` shares."""

from __future__ import annotations

import argparse
from pathlib import Path

from training.data import DEFAULT_SPLIT_FILE


def version_command(description: str, *, cache: bool = False, masks: bool = False) -> argparse.ArgumentParser:
    """A parser with the version folder, the data folder and the split file; ``cache``: the
    decoded-image cache option; ``masks``: the data folder must hold the lesion masks."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("version_dir", type=Path)
    contents = "metadata CSV, images/, masks/" if masks else "metadata CSV + images/"
    parser.add_argument("--data-dir", required=True, help=f"HAM10000 folder ({contents})")
    parser.add_argument("--split-file", default=str(DEFAULT_SPLIT_FILE))
    if cache:
        parser.add_argument("--cache-dir", default="training_runs/cache", help="decoded-image cache; '' for none")
    return parser


def add_split_choice(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--split",
        choices=("val", "test"),
        default="val",
        help="val (default) to choose between models; test only to score the chosen one, once",
    )
