"""An encrypted backup restores with its passphrase only; the sealed stream detects any change, cut or reordering."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from classifier.lib.sealed_stream import HEADER_SIZE, TAG_SIZE, SealedReader, SealedWriter, SealError
from classifier.models import LesionImage, Patient
from tests.conftest import media_files
from tests.factories import make_lesion, make_patient, make_visit
from tests.test_backup_restore import forget_content_type_ids, wipe  # noqa: F401  (an autouse fixture)

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def picture(owner, clinic):
    lesion = make_lesion(make_patient(clinic, reference="MRN-5150"))
    return make_visit(owner, lesion, taken_at=lesion.created_at, score=0.4)


def backup(path: Path, *args) -> None:
    call_command("backup", str(path), *args, stdout=io.StringIO(), stderr=io.StringIO())


@pytest.mark.django_db
def test_an_encrypted_backup_hides_the_pictures_and_restores_with_its_passphrase(picture, tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUP_PASSPHRASE", PASSPHRASE)
    archive = tmp_path / "site.tar.enc"
    backup(archive, "--encrypt")
    stored = picture.file.open("rb").read()
    sealed = archive.read_bytes()
    assert sealed.startswith(b"LSBKGCM1")
    assert stored[200:264] not in sealed and b"manifest.json" not in sealed
    wipe()

    call_command("restore", str(archive), stdout=io.StringIO())

    restored = LesionImage.objects.get(pk=picture.pk)
    assert restored.file.open("rb").read() == stored
    assert Patient.objects.get().reference == "MRN-5150"


@pytest.mark.django_db
def test_a_wrong_passphrase_is_said_plainly_and_restores_nothing(picture, tmp_path, monkeypatch):
    monkeypatch.setenv("BACKUP_PASSPHRASE", PASSPHRASE)
    archive = tmp_path / "site.tar.enc"
    backup(archive, "--encrypt")
    wipe()
    monkeypatch.setenv("BACKUP_PASSPHRASE", "not the passphrase at all")

    with pytest.raises(CommandError, match="The passphrase is wrong.*Nothing was restored"):
        call_command("restore", str(archive), stdout=io.StringIO())
    assert not LesionImage.objects.exists() and media_files() == []


@pytest.mark.django_db
def test_an_encrypted_backup_without_a_passphrase_to_hand_is_refused_before_anything_is_written(
    picture, tmp_path, monkeypatch
):
    monkeypatch.delenv("BACKUP_PASSPHRASE", raising=False)
    archive = tmp_path / "site.tar.enc"

    with pytest.raises(CommandError, match="A passphrase is needed: set BACKUP_PASSPHRASE"):
        backup(archive, "--encrypt")  # pytest's stdin is no terminal to ask at
    monkeypatch.setenv("BACKUP_PASSPHRASE", "short")
    with pytest.raises(CommandError, match="at least 12 characters"):
        backup(archive, "--encrypt")
    assert list(tmp_path.iterdir()) == []


def sealed(data: bytes, chunk_size: int = 16) -> bytes:
    out = io.BytesIO()
    writer = SealedWriter(out, PASSPHRASE, chunk_size=chunk_size)
    writer.write(data)
    writer.close()
    return out.getvalue()


def opened(data: bytes) -> bytes:
    reader = SealedReader(io.BytesIO(data), PASSPHRASE)
    plain = reader.read()
    reader.read_to_end()
    return plain


@pytest.mark.parametrize("length", [0, 1, 16, 17, 100])
def test_the_sealed_stream_gives_back_what_was_written_whatever_its_length(length):
    data = bytes(range(256))[:length]
    assert opened(sealed(data)) == data


def test_a_stream_cut_at_a_chunk_boundary_does_not_open():
    whole = sealed(b"x" * 64)  # four full chunks and an empty last one
    cut = whole[: HEADER_SIZE + 2 * (16 + TAG_SIZE)]

    with pytest.raises(SealError, match="damaged, altered or cut short: part 2"):
        opened(cut)


def test_chunks_swapped_do_not_open():
    whole = sealed(b"a" * 16 + b"b" * 16 + b"c")
    size = 16 + TAG_SIZE
    first, second = whole[HEADER_SIZE : HEADER_SIZE + size], whole[HEADER_SIZE + size : HEADER_SIZE + 2 * size]
    swapped = whole[:HEADER_SIZE] + second + first + whole[HEADER_SIZE + 2 * size :]

    with pytest.raises(SealError):
        opened(swapped)


def test_a_changed_header_does_not_open():
    whole = bytearray(sealed(b"payload"))
    whole[HEADER_SIZE - 1] ^= 0x01  # the nonce prefix's last byte

    with pytest.raises(SealError, match="passphrase is wrong"):
        opened(bytes(whole))
