"""HAM10000 metadata, the lesion-grouped split, and the decoded-image cache.

Pipeline order: read the metadata, hash every image, group images that show the
same lesion (same ``lesion_id``, or an exact / near-duplicate picture), split the
groups into train / validation / test stratified by ``dx``, then decode each image
once with ``training.preprocessing.load_model_input`` into a uint8 array cache.

Run ``python -m training.data --data-dir ../shared/data/ham10000`` to (re)build
``training/splits/ham10000_split.csv``.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from training.classes import CLASSES
from training.preprocessing import DEFAULT_GEOMETRY, load_model_input

METADATA_FILENAME = "HAM10000_metadata.csv"
IMAGES_DIRNAME = "images"
SPLITS = ("train", "val", "test")
DEFAULT_SPLIT_FILE = Path(__file__).resolve().parent / "splits" / "ham10000_split.csv"
SPLIT_FILE_IN_REPO = "training/splits/ham10000_split.csv"  # how cards name it
SPLIT_SEED = 20181  # fixed so every evaluation of every model sees the same test images
# 256-bit dHash (16x16). On HAM10000 the 64-bit hash is too coarse for
# lesion-centred pictures (43 of its 51 exact collisions are different lesions);
# at 256 bits every pair within 10 bits is the same lesion re-photographed or
# re-encoded, while unrelated lesions start colliding around 15-20 bits.
HASH_SIZE = 16
NEAR_DUPLICATE_DISTANCE = 10


def read_metadata(data_dir: Path | str) -> pd.DataFrame:
    """The metadata CSV, keeping only rows whose ``dx`` is one of our classes."""
    frame = pd.read_csv(Path(data_dir) / METADATA_FILENAME)
    missing = {"image_id", "lesion_id", "dx"} - set(frame.columns)
    if missing:
        raise ValueError(f"metadata lacks columns {sorted(missing)}")
    frame = frame[frame["dx"].isin(CLASSES)].reset_index(drop=True)
    return frame


def image_path(data_dir: Path | str, image_id: str) -> Path:
    return Path(data_dir) / IMAGES_DIRNAME / f"{image_id}.jpg"


# --- duplicate detection --------------------------------------------------------


def dhash(image: Image.Image, hash_size: int = HASH_SIZE) -> int:
    """Difference hash: the sign of horizontal gradients on a tiny greyscale copy.

    Robust to resizing, JPEG re-encoding and brightness changes, which is what
    separates a re-published copy of a picture from a genuinely different one.
    """
    small = image.convert("L").resize((hash_size + 1, hash_size), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).flatten()
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def hash_images(paths: list[Path], hash_size: int = HASH_SIZE) -> np.ndarray:
    """dHash of every file as rows of uint64 words, shape (N, hash_size**2 / 64)."""
    n_words = max(1, hash_size * hash_size // 64)
    hashes = np.empty((len(paths), n_words), dtype=np.uint64)
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            value = dhash(image, hash_size)
        hashes[i] = [(value >> (64 * w)) & (2**64 - 1) for w in range(n_words)]
    return hashes


def _hamming(rows: np.ndarray, hashes: np.ndarray) -> np.ndarray:
    """Bit distances between each of ``rows`` and each of ``hashes``: (len(rows), len(hashes))."""
    xor = rows[:, None, :] ^ hashes[None, :, :]
    as_bytes = xor.astype(">u8").view(np.uint8)
    return np.unpackbits(as_bytes, axis=-1).sum(axis=-1, dtype=np.int32)


def near_duplicate_pairs(hashes: np.ndarray, max_distance: int = NEAR_DUPLICATE_DISTANCE) -> list[tuple[int, int]]:
    """Index pairs (i < j) whose hashes differ in at most ``max_distance`` bits.

    All-pairs in row blocks: 10,015 images are 50 M comparisons, seconds in NumPy.
    """
    pairs: list[tuple[int, int]] = []
    block = 128
    for start in range(0, len(hashes), block):
        distances = _hamming(hashes[start : start + block], hashes)
        for i, j in zip(*np.nonzero(distances <= max_distance), strict=True):
            if start + i < j:
                pairs.append((int(start + i), int(j)))
    return pairs


def group_images(lesion_ids: list[str], duplicate_pairs: list[tuple[int, int]]) -> np.ndarray:
    """One group number per image, numbered in order of each group's first image: the
    connected components of the graph linking each image to its lesion and each
    duplicate pair to each other."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    count = len(lesion_ids)
    lesions, lesion_of = np.unique(np.asarray(lesion_ids, dtype=str), return_inverse=True)
    pairs = np.asarray(duplicate_pairs, dtype=np.int64).reshape(-1, 2)
    # Nodes 0..count-1 are the images, count + k the k-th lesion.
    rows = np.concatenate([np.arange(count), pairs[:, 0]])
    columns = np.concatenate([count + lesion_of, pairs[:, 1]])
    size = count + len(lesions)
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, columns)), shape=(size, size))
    _, components = connected_components(graph, directed=False)
    _, groups = np.unique(components[:count], return_inverse=True)
    return groups


# --- the split --------------------------------------------------------------------


def split_groups(labels: list[str], groups: np.ndarray, fractions: tuple[float, float, float], seed: int) -> np.ndarray:
    """Assign 'train' / 'val' / 'test' to every image, whole groups at a time.

    StratifiedGroupKFold into 20 folds of ~5 % keeps every class's share in every
    fold; the first folds become test, the next validation, the rest train.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    # StratifiedGroupKFold needs every class to have at least one member per fold:
    # HAM10000's rarest class (df, 115) allows all 20; tiny test datasets get fewer.
    n_folds = min(20, int(pd.Series(labels).value_counts().min()))
    n_test = max(1, round(fractions[2] * n_folds))
    n_val = max(1, round(fractions[1] * n_folds))
    folds = np.empty(len(labels), dtype=int)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    for fold, (_, held_out) in enumerate(splitter.split(np.zeros(len(labels)), labels, groups)):
        folds[held_out] = fold
    return np.where(folds < n_test, "test", np.where(folds < n_test + n_val, "val", "train"))


def make_split(
    metadata: pd.DataFrame,
    hashes: np.ndarray,
    fractions: tuple[float, float, float] = (0.70, 0.15, 0.15),
    seed: int = SPLIT_SEED,
    max_distance: int = NEAR_DUPLICATE_DISTANCE,
) -> pd.DataFrame:
    """The split table: image_id, lesion_id, dx, group, split."""
    pairs = near_duplicate_pairs(hashes, max_distance)
    groups = group_images(metadata["lesion_id"].tolist(), pairs)
    split = split_groups(metadata["dx"].tolist(), groups, fractions, seed)
    return pd.DataFrame(
        {
            "image_id": metadata["image_id"],
            "lesion_id": metadata["lesion_id"],
            "dx": metadata["dx"],
            "group": groups,
            "split": split,
        }
    )


def write_split(split: pd.DataFrame, path: Path | str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    split.to_csv(path, index=False)


def read_split(path: Path | str) -> pd.DataFrame:
    split = pd.read_csv(path)
    unknown = set(split["split"]) - set(SPLITS)
    if unknown:
        raise ValueError(f"{path}: unknown split names {sorted(unknown)}")
    return split


# --- decoded-image cache ------------------------------------------------------------


def load_images(
    data_dir: Path | str,
    image_ids: list[str],
    input_size: tuple[int, int],
    cache_dir: Path | str | None = None,
    geometry: str = DEFAULT_GEOMETRY,
) -> np.ndarray:
    """uint8 array (N, H, W, 3) of every image through the serving preprocessing (``geometry``).

    Decoding 10k JPEGs takes about a minute; the cache (keyed by size and ids) makes
    the second run instant. uint8 keeps 10k 150x150 images at 675 MB.
    """
    cache_path = None
    if cache_dir is not None:
        key = hashlib.sha1("\n".join(image_ids).encode(), usedforsecurity=False).hexdigest()[:12]
        framed = "" if geometry == DEFAULT_GEOMETRY else f"_{geometry}"
        cache_path = Path(cache_dir) / f"images_{input_size[0]}x{input_size[1]}{framed}_{len(image_ids)}_{key}.npy"
        if cache_path.is_file():
            return np.load(cache_path)
    images = np.empty((len(image_ids), *input_size, 3), dtype=np.uint8)
    for i, image_id in enumerate(image_ids):
        pixels = load_model_input(image_path(data_dir, image_id), input_size, geometry)
        images[i] = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    if cache_path is not None:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache_path, images)
    return images


def one_hot(labels: list[str] | pd.Series) -> np.ndarray:
    index = {code: i for i, code in enumerate(CLASSES)}
    return np.eye(len(CLASSES), dtype=np.float32)[[index[code] for code in labels]]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Build the lesion-grouped HAM10000 split.")
    parser.add_argument("--data-dir", default="../shared/data/ham10000")
    parser.add_argument("--out", default=str(DEFAULT_SPLIT_FILE))
    parser.add_argument("--seed", type=int, default=SPLIT_SEED)
    parser.add_argument("--max-distance", type=int, default=NEAR_DUPLICATE_DISTANCE)
    args = parser.parse_args(argv)

    metadata = read_metadata(args.data_dir)
    hashes = hash_images([image_path(args.data_dir, i) for i in metadata["image_id"]])
    split = make_split(metadata, hashes, seed=args.seed, max_distance=args.max_distance)
    write_split(split, args.out)
    n_lesions = metadata["lesion_id"].nunique()
    print(f"{len(split)} images, {n_lesions} lesion ids, {split['group'].nunique()} groups after duplicates")
    print(pd.crosstab(split["dx"], split["split"], margins=True).to_string())


if __name__ == "__main__":
    main()
