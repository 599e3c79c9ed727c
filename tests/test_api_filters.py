"""The images and predictions lists' filters: the history page's, documented, and strict about what they take."""

from __future__ import annotations

import datetime
import re

import pytest
from django.utils import timezone

from tests.factories import make_batch, make_image, make_prediction

pytestmark = pytest.mark.django_db

IMAGES, PREDICTIONS = "/api/v1/images/", "/api/v1/predictions/"
NOW = timezone.now()


def days_ago(days: float) -> datetime.datetime:
    return NOW - datetime.timedelta(days=days)


def reading(owner, name, days, status="done", note="", image=None, **fields):
    image = image or make_image(owner, original_filename=name, clinician_note=note, created_at=days_ago(days))
    return make_prediction(owner, status=status, image=image, created_at=days_ago(days), **fields)


@pytest.fixture
def readings(owner, outsider):
    """The owner's uploads, one reading each (the re-run image has two), and another clinic's melanoma."""
    made = {
        "mel": reading(owner, "left-arm.png", 5, note="Biopsy booked", top_class="mel", top_probability=0.6,
                       malignant_probability=0.8, is_malignant=True, is_out_of_distribution=False),
        "nv": reading(owner, "back.png", 4, top_class="nv", top_probability=0.9, malignant_probability=0.05,
                      is_malignant=False),  # an older version: no out-of-distribution check (NULL)
        "ood": reading(owner, "ceiling.png", 3, top_class="mel", top_probability=0.4, malignant_probability=0.7,
                       is_malignant=True, is_out_of_distribution=True),
        "queued": reading(owner, "waiting.png", 0.5, status="queued"),
    }  # fmt: skip
    made["rerun_old"] = reading(owner, "rerun.png", 2, top_class="mel", top_probability=0.5,
                                malignant_probability=0.9, is_malignant=True, is_out_of_distribution=False)  # fmt: skip
    made["rerun"] = reading(owner, "", 1, image=made["rerun_old"].image, top_class="nv", top_probability=0.7,
                            malignant_probability=0.2, is_malignant=False, is_out_of_distribution=False)  # fmt: skip
    reading(outsider, "left-arm-bob.png", 1, top_class="mel", is_malignant=True, malignant_probability=0.99)
    return made


def listed(client, url: str, query: str = "") -> list[int]:
    response = client.get(f"{url}?{query}")
    assert response.status_code == 200, response.json()
    return [item["id"] for item in response.json()["results"]]


def images(readings, *names) -> list[int]:
    return [readings[name].image_id for name in names]


def predictions(readings, *names) -> list[int]:
    return [readings[name].pk for name in names]


# --- What each filter selects


@pytest.mark.parametrize(
    ("query", "on_images", "on_predictions"),
    [
        ("top_class=mel", ["mel"], ["rerun_old", "mel"]),
        ("top_class=nv", ["rerun", "nv"], ["rerun", "nv"]),
        ("is_malignant=true", ["mel"], ["rerun_old", "mel"]),
        ("is_malignant=false", ["rerun", "nv"], ["rerun", "nv"]),
        ("is_out_of_distribution=true", ["ood"], ["ood"]),
        ("is_out_of_distribution=false", ["rerun", "mel"], ["rerun", "rerun_old", "mel"]),
        ("status=queued", ["queued"], ["queued"]),
        ("status=done&top_class=mel&is_malignant=true", ["mel"], ["rerun_old", "mel"]),
    ],
)
def test_the_reading_filters_select_on_both_lists(owner_api, readings, query, on_images, on_predictions):
    assert listed(owner_api, IMAGES, query) == images(readings, *on_images)
    assert listed(owner_api, PREDICTIONS, query) == predictions(readings, *on_predictions)


def test_an_out_of_distribution_prediction_matches_no_class_and_no_flag(owner_api, readings):
    ood_image, ood = readings["ood"].image_id, readings["ood"].pk
    for query in ("top_class=mel", "is_malignant=true", "is_malignant=false"):
        assert ood_image not in listed(owner_api, IMAGES, query), query
        assert ood not in listed(owner_api, PREDICTIONS, query), query


def test_an_images_filters_speak_of_its_latest_prediction(owner_api, readings):
    rerun = readings["rerun"].image_id
    assert rerun in listed(owner_api, IMAGES, "is_malignant=false")
    assert rerun not in listed(owner_api, IMAGES, "is_malignant=true")  # its earlier reading was flagged


def test_the_search_finds_the_file_name_and_the_note_in_any_case(owner_api, readings):
    assert listed(owner_api, IMAGES, "search=LEFT-arm") == images(readings, "mel")
    assert listed(owner_api, IMAGES, "search=biopsy") == images(readings, "mel")
    assert listed(owner_api, PREDICTIONS, "search=rerun") == predictions(readings, "rerun", "rerun_old")
    assert listed(owner_api, PREDICTIONS, "search=biopsy") == predictions(readings, "mel")


def test_a_search_never_reaches_another_clinicians_images(outsider_api, readings):
    assert [item["original_filename"] for item in outsider_api.get(f"{IMAGES}?search=left-arm").json()["results"]] == [
        "left-arm-bob.png"
    ]


def test_dates_count_whole_days_and_date_times_are_exact(owner_api, readings):
    since = days_ago(4).date().isoformat()
    assert listed(owner_api, IMAGES, f"created_after={since}") == images(readings, "queued", "rerun", "ood", "nv")
    assert listed(owner_api, IMAGES, f"created_before={since}") == images(readings, "nv", "mel")
    moment = days_ago(2.5).isoformat().replace("+00:00", "Z")
    assert listed(owner_api, IMAGES, f"created_after={moment}") == images(readings, "queued", "rerun")
    assert listed(owner_api, PREDICTIONS, f"created_after={moment}") == predictions(
        readings, "queued", "rerun", "rerun_old"
    )
    assert listed(owner_api, PREDICTIONS, f"created_before={moment}") == predictions(readings, "ood", "nv", "mel")


def test_the_orderings_are_the_history_pages(owner_api, readings):
    assert listed(owner_api, IMAGES, "ordering=newest") == images(readings, "queued", "rerun", "ood", "nv", "mel")
    assert listed(owner_api, IMAGES, "ordering=oldest") == images(readings, "mel", "nv", "ood", "rerun", "queued")
    # most suspicious first, by the latest reading's malignancy score (none yet: last)
    assert listed(owner_api, IMAGES, "ordering=malignant") == images(readings, "mel", "ood", "rerun", "nv", "queued")
    assert listed(owner_api, IMAGES, "ordering=confidence") == images(readings, "ood", "mel", "rerun", "nv", "queued")
    assert listed(owner_api, PREDICTIONS, "ordering=malignant") == predictions(
        readings, "rerun_old", "mel", "ood", "rerun", "nv", "queued"
    )


def test_the_images_list_filters_by_batch(owner_api, owner):
    batch = make_batch(owner)
    inside = make_prediction(owner, image=make_image(owner, batch=batch)).image  # as uploaded: listed in the batch
    make_prediction(owner)

    assert listed(owner_api, IMAGES, f"batch={batch.pk}") == [inside.pk]


# --- What they refuse


@pytest.mark.parametrize("url", [IMAGES, PREDICTIONS])
@pytest.mark.parametrize(
    ("query", "parameter", "message"),
    [
        ("is_malignent=true", "is_malignent", "Unknown query parameter. Did you mean is_malignant?"),
        ("sort=malignant", "sort", "Unknown query parameter."),
        ("is_malignant=maybe", "is_malignant", "Enter true or false."),
        ("top_class=melanoma", "top_class", "Select a valid choice. melanoma is not one of the available choices."),
        ("status=finished", "status", "Select a valid choice."),
        ("ordering=-created_at", "ordering", "Select a valid choice."),
        ("created_after=yesterday", "created_after", "Enter a date (2025-01-31) or a date and time"),
        ("batch=99999999999999999999999", "batch", "Ensure this value is less than or equal to 9223372036854775807."),
        ("batch=1.5", "batch", "Enter a whole number."),
    ],
)
def test_an_unknown_parameter_or_value_is_400_naming_it(owner_api, url, query, parameter, message):
    response = owner_api.get(f"{url}?{query}")

    assert response.status_code == 400
    body = response.json()
    assert list(body) == [parameter]
    assert body[parameter][0].startswith(message)


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        (PREDICTIONS, "image"),
        (PREDICTIONS, "batch"),
        (IMAGES, "batch"),
        (IMAGES, "patient"),
        (IMAGES, "lesion"),
        ("/api/v1/audit-events/", "patient"),
    ],
)
@pytest.mark.parametrize("value", ["99999999999999999999999", str(2**63), "0", "-1"])
def test_an_id_no_row_can_have_is_400_naming_it_not_a_server_error(owner_api, manager, url, parameter, value):
    owner_api.force_authenticate(manager)  # the audit log is the managers'
    response = owner_api.get(f"{url}?{parameter}={value}")

    assert response.status_code == 400
    assert list(response.json()) == [parameter]


def test_the_unknown_parameter_error_lists_the_known_ones(owner_api):
    message = owner_api.get(f"{IMAGES}?colour=red").json()["colour"][0]

    for name in ("batch", "created_after", "is_malignant", "ordering", "page", "page_size", "search", "top_class"):
        assert name in message


def test_pagination_and_format_are_not_taken_for_filters(owner_api, readings):
    response = owner_api.get(f"{PREDICTIONS}?page=2&page_size=1&format=json&top_class=nv")

    assert response.status_code == 200
    assert response.json()["count"] == 2
    assert [item["id"] for item in response.json()["results"]] == predictions(readings, "nv")


# --- The schema documents them, and names its enums


def schema(client) -> dict:
    response = client.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


@pytest.mark.parametrize("url", [IMAGES, PREDICTIONS])
def test_the_schema_documents_every_filter_of_both_lists(owner_web, url):
    parameters = {p["name"]: p for p in schema(owner_web)["paths"][url]["get"]["parameters"]}

    expected = {"batch", "status", "top_class", "is_malignant", "is_out_of_distribution", "created_after",
                "created_before", "search", "ordering", "page", "page_size"}  # fmt: skip
    assert expected <= set(parameters)
    assert parameters["is_malignant"]["schema"]["type"] == "boolean"
    assert parameters["ordering"]["schema"]["enum"] == ["confidence", "malignant", "newest", "oldest"]
    assert set(parameters["top_class"]["schema"]["enum"]) == {"akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"}
    assert "out-of-distribution" in parameters["top_class"]["description"]
    assert parameters["batch"]["schema"]["type"] == "integer"


# drf-spectacular names a choice set whose name collides "<field><3 hex digits of a hash>Enum", e.g. StatusD4fEnum.
HASHED_ENUM_NAME = re.compile(r"[A-Z0-9][0-9a-f]{2}Enum$")


def test_the_schema_has_no_hashed_enum_names(owner_web):
    components = schema(owner_web)["components"]["schemas"]
    enums = {name for name in components if name.endswith("Enum")}

    assert {"PredictionStatusEnum", "TrainingJobStatusEnum", "DiagnosisEnum", "DiagnosisMethodEnum"} <= enums
    assert [name for name in enums if HASHED_ENUM_NAME.search(name)] == []
    assert components["PredictionStatusEnum"]["enum"] == ["queued", "running", "done", "failed"]
