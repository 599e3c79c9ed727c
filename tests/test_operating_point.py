"""A site chooses its malignancy flag's operating point among the card's, seeing what each costs."""

from __future__ import annotations

import pytest

from classifier.models import ModelVersion, Prediction
from classifier.registry import register_model_versions
from tests.factories import make_prediction
from tests.signing_in import verified_login
from training.card import write_card

pytestmark = pytest.mark.django_db

CARD = {
    "version": "v-op",
    "classes": ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"],
    "input_size": [32, 32],
    "thresholds": {"malignant": 0.21},
    "metrics": {"test": {"malignant_threshold": 0.21, "malignant_sensitivity_at_threshold": 0.84,
                         "malignant_specificity_at_threshold": 0.72}},
    "operating_points": {"points": [
        {"target_sensitivity": 0.85, "threshold": 0.3023, "val": {"sensitivity": 0.85, "specificity": 0.775},
         "test": {"sensitivity": 0.79, "specificity": 0.785}},
        {"target_sensitivity": 0.95, "threshold": 0.1224, "val": {"sensitivity": 0.95, "specificity": 0.604},
         "test": {"sensitivity": 0.885, "specificity": 0.608}},
    ]},
}  # fmt: skip


@pytest.fixture
def version():
    return ModelVersion.objects.create(name="v-op", directory="v-op", card=CARD, malignant_threshold=0.21)


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("root", password="root-password-1")


def test_choosing_an_operating_point_moves_the_threshold_for_new_predictions_only(version, owner, admin_user):
    earlier = make_prediction(owner, status="done", top_class="nv", model_version=version, malignant_threshold=0.21)

    version.choose_operating_point(0.95, by=admin_user)

    version.refresh_from_db()
    assert (version.target_sensitivity, version.malignant_threshold) == (0.95, 0.1224)
    assert version.operating_point_chosen_by == admin_user
    probabilities = {"akiec": 0.05, "bcc": 0.05, "bkl": 0.1, "df": 0.1, "mel": 0.05, "nv": 0.6, "vasc": 0.05}
    assert Prediction.done_fields(version, probabilities, 0.15, 5.0)["is_malignant"] is True  # 0.15 >= 0.1224
    earlier.refresh_from_db()
    assert earlier.malignant_threshold == 0.21  # judged at the threshold of its day

    version.choose_operating_point(None, by=admin_user)
    assert version.malignant_threshold == 0.21


def test_an_operating_point_the_card_lacks_is_refused(version):
    with pytest.raises(ValueError, match="no operating point for 90% sensitivity.*85%, 95%"):
        version.choose_operating_point(0.90)
    version.refresh_from_db()
    assert version.malignant_threshold == 0.21


def test_the_versions_page_shows_each_point_with_its_false_alarms_and_the_admin_chooses_one(
    client, version, admin_user
):
    verified_login(client, admin_user)
    page = client.get(f"/admin/classifier/modelversion/{version.pk}/change/").content.decode()

    assert "95% of malignant lesions" in page and "12.2 %" in page  # the threshold
    assert "88.5 %" in page and "39.2 %" in page  # caught, and benign flagged (1 - 0.608), on test

    response = client.post(f"/admin/classifier/modelversion/{version.pk}/operating-point/",
                           {"target_sensitivity": "0.95"})  # fmt: skip

    assert response.status_code == 302
    version.refresh_from_db()
    assert version.malignant_threshold == 0.1224
    listing = client.get("/admin/classifier/modelversion/").content.decode()
    assert "≥ 12.2 % (95% target)" in listing and "catches 88.5 % of malignant, flags 39.2 % of benign" in listing


def test_the_api_serves_an_operating_point_and_refuses_one_the_card_lacks(version, admin_user):
    from tests.conftest import token_client

    api = token_client(admin_user)
    url = f"/api/v1/model-versions/{version.pk}/operating-point/"

    assert api.post(url, {"target_sensitivity": 0.85}, format="json").json()["malignant_threshold"] == 0.3023
    refused = api.post(url, {"target_sensitivity": 0.5}, format="json")
    assert refused.status_code == 400 and "target_sensitivity" in refused.json()
    assert [p["target_sensitivity"] for p in api.get(f"/api/v1/model-versions/{version.pk}/").json()[
        "operating_points"]] == [0.85, 0.95]  # fmt: skip


def test_a_clinician_cannot_choose_the_operating_point(version, owner_api):
    url = f"/api/v1/model-versions/{version.pk}/operating-point/"
    assert owner_api.post(url, {"target_sensitivity": 0.95}, format="json").status_code == 403


def test_a_refreshed_card_keeps_the_chosen_point_at_its_new_threshold(tmp_path, settings, version):
    version.choose_operating_point(0.95)
    folder = tmp_path / "v-op"
    new_card = {**CARD, "operating_points": {"points": [{**CARD["operating_points"]["points"][1], "threshold": 0.13}]}}
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"")
    write_card(folder, new_card)

    register_model_versions(tmp_path, tmp_path / "none")

    version.refresh_from_db()
    assert (version.target_sensitivity, version.malignant_threshold) == (0.95, 0.13)


def test_the_api_and_the_admin_say_what_each_version_s_score_is(version, admin_user, client):
    from tests.conftest import token_client
    from tests.test_malignancy_score import FITTED
    from training.malignancy import SUMMED, from_card_entry

    fitted = ModelVersion.objects.create(
        name="v-fitted", directory="v-fitted", card={**CARD, "version": "v-fitted", "malignancy_score": FITTED},
        malignant_threshold=0.21,
    )  # fmt: skip
    api = token_client(admin_user)

    summed = api.get(f"/api/v1/model-versions/{version.pk}/").json()["malignancy_score"]
    logistic = api.get(f"/api/v1/model-versions/{fitted.pk}/").json()["malignancy_score"]

    assert summed == {"kind": "sum", "meaning": SUMMED.description}
    assert logistic["kind"] == "logistic" and logistic["weights"] == FITTED["weights"]
    assert logistic["meaning"] == from_card_entry(FITTED).description
    verified_login(client, admin_user)
    page = client.get(f"/admin/classifier/modelversion/{fitted.pk}/change/").content.decode()
    assert "fitted on the validation split" in page
