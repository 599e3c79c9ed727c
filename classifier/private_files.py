"""What the site writes is readable by its own account only.

Pictures of patients' skin, the models trained on them and the database holding the
records must not be readable by other accounts on the host. The storage writes uploads
and thumbnails with FILE_UPLOAD_PERMISSIONS / FILE_UPLOAD_DIRECTORY_PERMISSIONS
(settings: 0o600 / 0o700); this module covers what the app writes beside it: a trained
version's folder (training writes it through Keras, with the process's umask) and the
SQLite database file, made private each time a connection opens it (SQLite gives its
journal and WAL files the database file's mode).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_FILE_MODE = 0o600
PRIVATE_DIRECTORY_MODE = 0o700


def make_private(path: Path) -> None:
    """chmod a folder and everything under it (or one file) to the owner only."""
    path = Path(path)
    if path.is_file():
        os.chmod(path, PRIVATE_FILE_MODE)
        return
    os.chmod(path, PRIVATE_DIRECTORY_MODE)
    for folder, dirs, files in os.walk(path):
        for name in dirs:
            os.chmod(Path(folder, name), PRIVATE_DIRECTORY_MODE)
        for name in files:
            os.chmod(Path(folder, name), PRIVATE_FILE_MODE)


def sqlite_file(connection) -> Path | None:
    """The file a SQLite connection uses; None for another database or an in-memory one."""
    if connection.vendor != "sqlite":
        return None
    name = str(connection.settings_dict["NAME"])
    if name == ":memory:" or name.startswith("file:") or not os.path.isfile(name):
        return None
    return Path(name)


def make_sqlite_file_private(sender, connection, **kwargs) -> None:
    """connection_created hook: the SQLite file is the owner's alone, if it is ours to change."""
    path = sqlite_file(connection)
    if path is None:
        return
    info = path.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) != PRIVATE_FILE_MODE:
        os.chmod(path, PRIVATE_FILE_MODE)
