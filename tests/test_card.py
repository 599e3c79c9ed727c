"""Model cards: what a server needs to trust before it loads a model."""

from __future__ import annotations

import pytest

from tests.tiny_model import tiny_card
from training.card import CardError, parse_card, read_card


def test_a_complete_card_parses():
    card = parse_card(tiny_card("v1", threshold=0.3))
    assert (card.version, card.input_size, card.malignant_threshold) == ("v1", (32, 32), 0.3)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": ""}, "'version'"),
        ({"classes": ["nv", "mel"]}, "'classes'"),
        ({"classes": ["akiec", "bcc", "bkl", "df", "mel", "nv", "nv"]}, "'classes'"),
        ({"input_size": [16, 16]}, "'input_size'"),
        ({"input_size": [150]}, "'input_size'"),
        ({"thresholds": {"malignant": 1.5}}, "'thresholds.malignant'"),
        ({"thresholds": {}}, "'thresholds.malignant'"),
    ],
)
def test_a_card_that_would_mislead_a_server_is_refused(change, message):
    with pytest.raises(CardError, match=message):
        parse_card({**tiny_card("v1"), **change})


def test_a_missing_card_file_is_reported_with_its_path(tmp_path):
    with pytest.raises(CardError, match="does not exist"):
        read_card(tmp_path)
