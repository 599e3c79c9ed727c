"""A stream encrypted with a passphrase: AES-256-GCM in chunks, the key from scrypt.

Not Fernet: a Fernet token is one message, encrypted and authenticated whole, so a
backup holding gigabytes of pictures would have to sit in memory to be written or read.
Here each chunk is sealed on its own (memory stays at one chunk) with a nonce made of its
position and whether it is the last one (the STREAM construction of Hoang, Reyhanitabar,
Rogaway and Vizár, 2015), so a chunk moved, dropped, or cut off at the end fails to open
as a changed byte does. Every chunk also authenticates the header.

Layout::

    MAGIC (8) | log2 n, r, p of scrypt (1 each) | chunk size (4) | salt (16) | nonce prefix (7)
    then each chunk's ciphertext and tag (chunk size + 16 bytes; the last one shorter, maybe empty)

The nonce of chunk i is the prefix (7), i (4, big-endian) and 1 for the last chunk, else 0 (1).
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

MAGIC = b"LSBKGCM1"
# scrypt at n = 2**17, r = 8: 128 MiB and about a second per guess, so a stolen archive's
# passphrase is slow to guess (0.8-1.1 s on the 2-core development machine:
# python -m timeit -n 1 -r 3 -s 'from classifier.lib import sealed_stream as s' 's._key("x", bytes(16), 17, 8, 1)').
SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P = 17, 8, 1
CHUNK_SIZE = 1024 * 1024
TAG_SIZE = 16
_HEADER = struct.Struct(">8sBBBI16s7s")
HEADER_SIZE = _HEADER.size
MAX_CHUNK_SIZE = 64 * 1024 * 1024  # a header asking for more is not ours


class SealError(Exception):
    """The stream cannot be opened: wrong passphrase, damaged, cut short, or not ours."""


def is_sealed(start: bytes) -> bool:
    return start[: len(MAGIC)] == MAGIC


def _key(passphrase: str, salt: bytes, log2_n: int, r: int, p: int) -> AESGCM:
    if not passphrase:
        raise SealError("No passphrase was given.")
    kdf = Scrypt(salt=salt, length=32, n=2**log2_n, r=r, p=p)
    return AESGCM(kdf.derive(passphrase.encode("utf-8")))


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    if index >= 2**32:
        raise SealError("The stream is longer than this format allows (2**32 chunks).")
    return prefix + struct.pack(">IB", index, 1 if last else 0)


class SealedWriter:
    """A binary file-like object: what is written goes to ``raw`` sealed; ``close()`` seals the last chunk."""

    def __init__(self, raw: BinaryIO, passphrase: str, chunk_size: int = CHUNK_SIZE) -> None:
        salt, prefix = os.urandom(16), os.urandom(7)
        self._header = _HEADER.pack(MAGIC, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P, chunk_size, salt, prefix)
        self._aead = _key(passphrase, salt, SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P)
        self._raw, self._prefix, self._chunk_size = raw, prefix, chunk_size
        self._buffer = bytearray()
        self._index = 0
        self.closed = False
        raw.write(self._header)

    def write(self, data) -> int:
        self._buffer += data
        # A full chunk is sealed only once more follows: the last one must say it is the last.
        while len(self._buffer) > self._chunk_size:
            self._seal(bytes(self._buffer[: self._chunk_size]), last=False)
            del self._buffer[: self._chunk_size]
        return len(data)

    def _seal(self, chunk: bytes, last: bool) -> None:
        self._raw.write(self._aead.encrypt(_nonce(self._prefix, self._index, last), chunk, self._header))
        self._index += 1

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        if not self.closed:
            self._seal(bytes(self._buffer), last=True)
            self._buffer.clear()
            self._raw.flush()
            self.closed = True


class SealedReader:
    """A binary file-like object reading the plain bytes of a sealed ``raw`` stream."""

    def __init__(self, raw: BinaryIO, passphrase: str) -> None:
        header = raw.read(HEADER_SIZE)
        if len(header) < HEADER_SIZE or not is_sealed(header):
            raise SealError("This is not an encrypted lesionsite backup (its first bytes are not one's).")
        _, log2_n, r, p, chunk_size, salt, prefix = _HEADER.unpack(header)
        if not (10 <= log2_n <= 24 and 1 <= r <= 32 and 1 <= p <= 16 and 1 <= chunk_size <= MAX_CHUNK_SIZE):
            raise SealError("The encrypted backup's header is damaged (its parameters are out of range).")
        self._aead = _key(passphrase, salt, log2_n, r, p)
        self._raw, self._header, self._prefix = raw, header, prefix
        self._sealed_size = chunk_size + TAG_SIZE
        self._index = 0
        self._plain = b""
        self._ahead = raw.read(self._sealed_size)
        self._done = False

    def _open_next(self) -> None:
        sealed, self._ahead = self._ahead, self._raw.read(self._sealed_size)
        last = not self._ahead
        try:
            self._plain = self._aead.decrypt(_nonce(self._prefix, self._index, last), sealed, self._header)
        except InvalidTag:
            if self._index == 0:
                raise SealError("The passphrase is wrong (or the backup's first bytes are damaged).") from None
            raise SealError(
                f"The encrypted backup is damaged, altered or cut short: part {self._index + 1} does not open."
            ) from None
        self._index += 1
        self._done = last

    def read(self, size: int = -1) -> bytes:
        parts, wanted = [], size if size is not None and size >= 0 else None
        while wanted is None or wanted > 0:
            if not self._plain:
                if self._done:
                    break
                self._open_next()
                continue
            take = self._plain if wanted is None else self._plain[:wanted]
            self._plain = self._plain[len(take) :]
            parts.append(take)
            if wanted is not None:
                wanted -= len(take)
        return b"".join(parts)

    def read_to_end(self) -> None:
        """Open every remaining chunk: what is after the reader's last read must be whole too."""
        while self.read(self._sealed_size):
            pass
