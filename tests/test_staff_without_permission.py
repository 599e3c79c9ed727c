"""Being staff is never enough: every URL the site has (walked from the resolver, so a new one is covered
the day it is added) refuses a staff user who holds no permission and is in no clinic, or answers without
any record in it; nothing changes. The same user given a permission gets the platform endpoint it grants."""

from __future__ import annotations

import re
import uuid

import pytest
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.urls import URLPattern, URLResolver, get_resolver

from classifier.audit import AuditEvent
from classifier.models import Lesion, LesionImage, ModelActivation, ModelVersion, Patient, Prediction, TrainingJob
from tests.factories import make_batch, make_image, make_lesion, make_patient, make_prediction
from tests.signing_in import verified_login

pytestmark = pytest.mark.django_db

# Written into every record below: an answer that carries one of them showed a record.
MARKERS = ["MRN-HIDDEN-4711", "hidden-note", "hidden-jane-doe.jpg", "hidden-lesion", "hidden-version",
           "hidden-job-log", "Hidden clinic", "hidden-owner"]  # fmt: skip
CARD = {"version": "hidden-version", "classes": ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"],
        "input_size": [32, 32], "thresholds": {"malignant": 0.3}}  # fmt: skip
BINARY = ("image/", "application/pdf", "application/zip", "application/octet-stream")


@pytest.fixture
def records(django_user_model):
    from classifier.models import Clinic

    clinic = Clinic.objects.create(name="Hidden clinic")
    owner = django_user_model.objects.create_user("hidden-owner", password="hidden-owner-password")
    clinic.add_member(owner, "manager")
    patient = make_patient(clinic, "MRN-HIDDEN-4711", note="hidden-note")
    lesion = make_lesion(patient, label="hidden-lesion", note="hidden-note")
    batch = make_batch(owner, clinic)
    image = make_image(owner, clinic, lesion=lesion, batch=batch, original_filename="hidden-jane-doe.jpg",
                       clinician_note="hidden-note")  # fmt: skip
    version = ModelVersion.objects.create(name="hidden-version", directory="hidden-version", card=CARD,
                                          malignant_threshold=0.3)  # fmt: skip
    prediction = make_prediction(owner, status="done", top_class="mel", image=image, model_version=version)
    job = TrainingJob.objects.create(requested_by=owner, log_tail="hidden-job-log", error="hidden-job-log")
    event = AuditEvent.objects.create(user=owner, username="hidden-owner", clinic=clinic, action="viewed_patient",
                                      object_repr="MRN-HIDDEN-4711", patient_id=patient.pk)  # fmt: skip
    from classifier.tokens import ApiToken

    token, _ = ApiToken.objects.issue(owner, "hidden-device")
    from classifier.webhooks import WebhookDelivery, WebhookEndpoint

    endpoint = WebhookEndpoint.objects.create(user=owner, url="https://hidden.example/hook", secret="hidden-secret",
                                              events=["prediction.finished"])  # fmt: skip
    delivery = WebhookDelivery.objects.create(endpoint=endpoint, clinic=clinic, event_type="prediction.finished",
                                              event_id=uuid.uuid4(), payload={"hidden": "MRN-HIDDEN-4711"})  # fmt: skip
    from django_otp.plugins.otp_static.models import StaticDevice

    from tests.signing_in import enrolled_phone

    phone = enrolled_phone(owner)
    recovery = StaticDevice.objects.create(user=owner, name="Recovery codes", confirmed=True)
    return {
        "phone": phone, "recovery": recovery,
        "clinic": clinic, "owner": owner, "patient": patient, "lesion": lesion, "batch": batch, "image": image,
        "version": version, "prediction": prediction, "job": job, "event": event, "token": token,
        "webhook": endpoint, "delivery": delivery,
    }  # fmt: skip


@pytest.fixture
def staff(django_user_model):
    """Staff, so the admin lets them in; no permission, no clinic."""
    return django_user_model.objects.create_user("stella", password="stella-password-1", is_staff=True)


def routes(patterns=None, prefix=""):
    """Every URL pattern of the site as one string (route or regex), with the view's pattern object's type."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern)


# Which record a path's id stands for, by the segment before it (API, pages and admin).
ID_OF = {
    "images": "image", "lesionimage": "image", "unlabelledimage": "image", "predictions": "prediction",
    "prediction": "prediction", "batches": "batch", "uploadbatch": "batch", "patients": "patient",
    "lesions": "lesion", "training-jobs": "job", "trainingjob": "job", "model-versions": "version",
    "modelversion": "version", "clinic": "clinic", "auditevent": "event", "user": "owner", "apitoken": "token",
    "tokens": "token", "webhooks": "webhook", "webhookendpoint": "webhook", "webhookdelivery": "delivery",
    "totpdevice": "phone", "staticdevice": "recovery",
}  # fmt: skip
# Ids whose rows these tests do not make: any value, the view must still refuse.
ANY_ID = {"group", "accessattempt", "accesslog", "accessfailurelog", "reset"}
PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>((?:[^()]|\([^()]*\))*)\)")


def concrete_paths(route: str, records: dict) -> list[str]:
    """The route with every parameter filled with a real record's id ([] for a format-suffix duplicate)."""
    if "format" in route and ("(?P<format>" in route or ":format>" in route):
        return []  # the same view as the route without the suffix
    paths = [""]
    position = 0
    for match in PARAMETER.finditer(route):
        literal = route[position : match.start()]
        name, alternatives = match.group(1) or match.group(2), match.group(3)
        position = match.end()
        if alternatives and re.fullmatch(r"[\w|]+", alternatives):
            values = alternatives.split("|")  # the admin's app labels
        elif name == "url":
            values = ["nothing-here/"]  # the admin's catch-all
        elif name == "content_type_id":
            values = [str(ContentType.objects.get_for_model(LesionImage).pk)]
        elif name == "object_id" and route.startswith("admin/r/"):
            values = [str(records["image"].pk)]
        else:
            segment = literal.replace("^", "").strip("/").split("/")[-1]
            if segment in ID_OF:
                values = [str(records[ID_OF[segment]].pk)]
            elif segment in ANY_ID or name in ("uidb64", "token"):
                values = ["1"]
            else:
                raise AssertionError(f"{route}: say which record <{name}> after {segment!r} stands for (ID_OF)")
        paths = [done + literal + value for done in paths for value in values]
    return ["/" + _plain(done + route[position:]) for done in paths]


def _plain(path: str) -> str:
    """A regex route's text as a path: no anchors, no escapes."""
    return path.replace("^", "").replace("$", "").replace("\\.", ".").replace("/?", "/")


def every_path(records: dict) -> list[str]:
    paths = sorted({path for route in routes() for path in concrete_paths(route, records)})
    assert len(paths) > 100  # the walk found the admin, the API and the pages
    return paths


def state(records: dict) -> dict:
    """What a refused request must not have changed."""
    image, lesion, version = (LesionImage.objects.get(pk=records["image"].pk), Lesion.objects.get(
        pk=records["lesion"].pk), ModelVersion.objects.get(pk=records["version"].pk))  # fmt: skip
    return {
        "rows": [
            model.objects.count() for model in (Patient, Lesion, LesionImage, Prediction, TrainingJob, ModelActivation)
        ],  # fmt: skip
        "image": (image.diagnosis, image.clinician_note, image.lesion_id, image.clinic_id),
        "lesion": (lesion.diagnosis, lesion.label, lesion.note),
        "patient": list(Patient.objects.values_list("reference", "note")),
        "version": (version.is_active, version.malignant_threshold, version.target_sensitivity),
        "job": TrainingJob.objects.get(pk=records["job"].pk).cancel_requested,
    }


def assert_shows_nothing(response, method: str, path: str) -> None:
    where = f"{method} {path} answered {response.status_code}"
    assert response.status_code != 500, where
    if response.status_code in (204, 301, 302, 400, 401, 403, 404, 405, 503):
        body = response.content.decode(errors="replace") if not response.streaming else ""
        assert not [marker for marker in MARKERS if marker in body], where
        return
    assert response.status_code == 200, where
    content_type = response.get("Content-Type", "")
    assert not content_type.startswith(BINARY), f"{where} with a file ({content_type})"
    body = b"".join(response.streaming_content) if response.streaming else response.content
    shown = [marker for marker in MARKERS if marker in body.decode(errors="replace")]
    assert not shown, f"{where} showing {shown}"


def test_a_staff_user_without_permissions_is_refused_everywhere_or_shown_nothing(client, staff, records):
    before = state(records)
    api = [path for path in every_path(records) if path.startswith("/api/")]

    for path in every_path(records):
        for method in ("get", "post") + (("put", "patch", "delete") if path in api else ()):
            verified_login(client, staff)  # a logout URL must not end the walk as someone anonymous
            response = getattr(client, method)(path, {}, content_type="application/json") if method != "get" \
                else client.get(path)  # fmt: skip
            assert_shows_nothing(response, method.upper(), path)

    assert state(records) == before


def test_the_platform_endpoints_answer_403_to_staff_without_their_permission(client, staff, records):
    verified_login(client, staff)
    version, job, image = records["version"], records["job"], records["image"]

    for method, path in [
        ("get", "/api/v1/model-versions/"),
        ("get", f"/api/v1/model-versions/{version.pk}/"),
        ("post", f"/api/v1/model-versions/{version.pk}/activate/"),
        ("post", f"/api/v1/model-versions/{version.pk}/operating-point/"),
        ("get", "/api/v1/training-jobs/"),
        ("get", f"/api/v1/training-jobs/{job.pk}/"),
        ("post", "/api/v1/training-jobs/"),
        ("post", f"/api/v1/training-jobs/{job.pk}/cancel/"),
        ("post", f"/api/v1/images/{image.pk}/label/"),
        ("get", f"/admin/classifier/lesionimage/{image.pk}/file/"),
        ("get", f"/admin/classifier/lesionimage/{image.pk}/thumbnail/"),
        ("post", f"/admin/classifier/modelversion/{version.pk}/activate/"),
        ("post", f"/admin/classifier/modelversion/{version.pk}/operating-point/"),
        ("get", "/admin/classifier/trainingjob/start/"),
        ("post", f"/admin/classifier/trainingjob/{job.pk}/cancel/"),
    ]:
        assert getattr(client, method)(path).status_code == 403, f"{method} {path}"


def grant(user, *codenames: str):
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="classifier", codename__in=codenames))
    return type(user).objects.get(pk=user.pk)  # a fresh row: has_perm caches what it read


def test_the_permission_grants_its_endpoint_and_nothing_of_the_clinics(client, staff, records):
    version, job, image = records["version"], records["job"], records["image"]
    staff = grant(staff, "view_modelversion", "change_modelversion", "view_trainingjob", "change_trainingjob",
                  "view_lesionimage", "change_lesionimage")  # fmt: skip
    verified_login(client, staff)

    assert client.get("/api/v1/model-versions/").json()["results"][0]["name"] == "hidden-version"
    assert client.get(f"/api/v1/model-versions/{version.pk}/").status_code == 200
    activated = client.post(f"/api/v1/model-versions/{version.pk}/activate/", {"confirm": True},
                            content_type="application/json")  # fmt: skip
    assert activated.status_code == 200 and activated.json()["is_active"] is True
    assert client.get(f"/api/v1/training-jobs/{job.pk}/").status_code == 200
    assert client.post(f"/api/v1/training-jobs/{job.pk}/cancel/").status_code == 200
    labelled = client.post(f"/api/v1/images/{image.pk}/label/", {"diagnosis": "mel", "method": "histo"},
                           content_type="application/json")  # fmt: skip
    assert labelled.status_code == 200
    assert client.get(f"/admin/classifier/lesionimage/{image.pk}/file/").status_code == 200
    assert "database" in client.get("/healthz").json()  # the details
    # Starting a job is its own permission.
    assert client.post("/api/v1/training-jobs/", {"epochs": 1}, content_type="application/json").status_code == 403

    # The clinic's records stay behind its membership, whatever the permissions.
    lesion = records["lesion"]
    for path in [f"/api/v1/images/{image.pk}/", f"/images/{image.pk}/file/", f"/lesions/{lesion.pk}/",
                 f"/api/v1/patients/{records['patient'].pk}/"]:  # fmt: skip
        assert client.get(path).status_code == 404, path
    assert client.post(f"/lesions/{lesion.pk}/label/", {"diagnosis": "nv", "method": "histo"}).status_code == 404


def test_starting_a_job_takes_the_add_permission(client, staff, records):
    records["job"].delete()  # only one job may be open
    verified_login(client, grant(staff, "view_trainingjob", "add_trainingjob"))

    response = client.post("/api/v1/training-jobs/", {"epochs": 1}, content_type="application/json")

    assert response.status_code == 400, response.content  # past the permission: no active version to start from
    assert client.get("/admin/classifier/trainingjob/start/").status_code == 200


def test_a_superuser_holds_every_permission(client, django_user_model, records):
    root = django_user_model.objects.create_superuser("root", password="root-password-12")
    verified_login(client, root)

    assert client.get("/api/v1/model-versions/").status_code == 200
    assert client.get("/api/v1/training-jobs/").status_code == 200
    assert client.get(f"/admin/classifier/lesionimage/{records['image'].pk}/file/").status_code == 200
    assert client.get("/admin/classifier/lesionimage/").status_code == 200
    # ...and still sees a clinic's records on the site only as a member.
    assert client.get(f"/api/v1/images/{records['image'].pk}/").status_code == 404
