"""/api/v1/webhooks/: a user's endpoints, the secret shown once, the targets checked, the delivery log."""

from __future__ import annotations

import pytest

from classifier.models import WebhookDelivery, WebhookEndpoint

PUBLIC_URL = "https://93.184.215.14/hooks/lesionsite"  # a literal public address: no DNS lookup in the test
BOTH = ["prediction.finished", "batch.finished"]


def create(api, **fields):
    return api.post("/api/v1/webhooks/", {"url": PUBLIC_URL, "events": BOTH, **fields}, format="json")


@pytest.fixture
def endpoint(owner_api, owner):
    response = create(owner_api)
    assert response.status_code == 201, response.json()
    return WebhookEndpoint.objects.get(pk=response.json()["id"])


def test_it_shows_the_secret_once_when_the_endpoint_is_created(owner_api, owner):
    response = create(owner_api)

    assert response.status_code == 201
    body = response.json()
    stored = WebhookEndpoint.objects.get(pk=body["id"])
    assert body["secret"] == stored.secret and body["secret"].startswith("whsec_")
    assert stored.user == owner and stored.events == BOTH and stored.is_active
    for answer in (owner_api.get("/api/v1/webhooks/"), owner_api.get(f"/api/v1/webhooks/{body['id']}/")):
        assert answer.status_code == 200
        assert stored.secret not in answer.content.decode() and "secret" not in answer.content.decode()


def test_another_users_endpoint_and_its_log_answer_404(endpoint, outsider_api):
    assert outsider_api.get("/api/v1/webhooks/").json()["results"] == []
    for path in (f"/api/v1/webhooks/{endpoint.pk}/", f"/api/v1/webhooks/{endpoint.pk}/deliveries/"):
        assert outsider_api.get(path).status_code == 404
    assert outsider_api.patch(f"/api/v1/webhooks/{endpoint.pk}/", {"events": BOTH}, format="json").status_code == 404
    assert outsider_api.delete(f"/api/v1/webhooks/{endpoint.pk}/").status_code == 404
    assert WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_it_refuses_anonymous_clients(anonymous_api):
    assert anonymous_api.get("/api/v1/webhooks/").status_code == 401


def test_it_refuses_plain_http_outside_debug(owner_api):
    response = create(owner_api, url="http://93.184.215.14/hooks")
    assert response.status_code == 400
    assert "https" in response.json()["url"][0]
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "url", ["https://127.0.0.1/x", "https://10.0.0.8/x", "https://169.254.169.254/latest/", "https://[::1]/x",
            "https://localhost:8000/x"],
)  # fmt: skip
def test_it_refuses_a_target_in_the_sites_own_network(owner_api, url):
    response = create(owner_api, url=url)
    assert response.status_code == 400
    assert "not a public address" in response.json()["url"][0]


def test_debug_or_the_private_targets_setting_allows_a_receiver_on_this_machine(owner_api, settings):
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS = True
    assert create(owner_api, url="http://127.0.0.1:9000/hooks").status_code == 201
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS, settings.DEBUG = False, True
    assert create(owner_api, url="http://127.0.0.1:9001/hooks").status_code == 201


def test_it_names_an_unknown_event_type_or_an_empty_list(owner_api):
    assert "is not a valid choice" in str(create(owner_api, events=["prediction.done"]).json()["events"])
    assert create(owner_api, events=[]).status_code == 400


def test_an_endpoint_may_be_narrowed_to_one_of_the_users_clinics_only(owner_api, clinic, other_clinic):
    assert create(owner_api, clinic=clinic.pk).json()["clinic"] == clinic.pk
    refused = create(owner_api, clinic=other_clinic.pk)
    assert refused.status_code == 400
    assert f"not a member of clinic {other_clinic.pk}" in refused.json()["clinic"][0]


def test_patch_enables_a_disabled_endpoint_again_and_clears_its_failures(owner_api, endpoint):
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
        is_active=False, disabled_reason="Disabled after 5 deliveries in a row failed", consecutive_failures=5
    )

    response = owner_api.patch(f"/api/v1/webhooks/{endpoint.pk}/", {"is_active": True}, format="json")

    assert response.status_code == 200
    assert response.json() | {"is_active": True, "disabled_reason": "", "consecutive_failures": 0} == response.json()
    endpoint.refresh_from_db()
    assert (endpoint.is_active, endpoint.disabled_reason, endpoint.consecutive_failures) == (True, "", 0)


def test_patch_changes_the_events_but_not_the_url(owner_api, endpoint):
    changed = owner_api.patch(f"/api/v1/webhooks/{endpoint.pk}/", {"events": ["batch.finished"]}, format="json")
    assert changed.status_code == 200 and changed.json()["events"] == ["batch.finished"]
    moved = owner_api.patch(f"/api/v1/webhooks/{endpoint.pk}/", {"url": "https://93.184.215.15/"}, format="json")
    assert moved.status_code == 400 and "cannot be changed" in moved.json()["url"][0]
    assert owner_api.put(f"/api/v1/webhooks/{endpoint.pk}/", {}, format="json").status_code == 405


def test_delete_removes_the_endpoint(owner_api, endpoint):
    assert owner_api.delete(f"/api/v1/webhooks/{endpoint.pk}/").status_code == 204
    assert not WebhookEndpoint.objects.exists()


def test_the_log_lists_the_endpoints_deliveries_newest_first(owner_api, endpoint, clinic):
    for attempts in (1, 2):
        WebhookDelivery.objects.create(
            endpoint=endpoint, clinic=clinic, event_type="prediction.finished",
            event_id=f"00000000-0000-0000-0000-00000000000{attempts}", payload={"id": attempts},
            attempts=attempts, last_status_code=500, last_error="HTTP 500 Internal Server Error",
        )  # fmt: skip

    response = owner_api.get(f"/api/v1/webhooks/{endpoint.pk}/deliveries/")

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["attempts"] for row in rows] == [2, 1]
    assert rows[0]["state"] == "failed" and rows[0]["last_status_code"] == 500
    assert endpoint.secret not in response.content.decode()


def test_a_user_has_at_most_ten_endpoints(owner_api):
    for _ in range(10):
        assert create(owner_api).status_code == 201
    refused = create(owner_api)
    assert refused.status_code == 400 and "10 webhook endpoints already" in refused.json()["url"][0]


def test_the_admin_never_shows_the_secret(admin_client, endpoint):
    for path in ("/admin/classifier/webhookendpoint/", f"/admin/classifier/webhookendpoint/{endpoint.pk}/change/"):
        page = admin_client.get(path)
        assert page.status_code == 200 and endpoint.url in page.content.decode()
        assert endpoint.secret not in page.content.decode()
