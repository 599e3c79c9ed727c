"""The clinic's own pages: the header's switcher, and for managers the members and the audit log.
Each with its people: the manager, a clinician of the clinic, a member of another clinic, anonymous."""

from __future__ import annotations

import csv
import datetime
import io

import pytest
from django.test import RequestFactory
from django.utils import timezone

from classifier.audit import Action, AuditEvent, audit
from classifier.models import Membership
from tests.factories import make_image, make_lesion, make_patient, make_prediction
from tests.signing_in import verified_login

pytestmark = pytest.mark.django_db
MANAGER_PAGES = ["/clinic/members/", "/clinic/audit/", "/clinic/audit/export.csv"]


@pytest.fixture
def manager_web(client, manager):
    verified_login(client, manager)
    return client


def csv_rows(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))


# --- Who may open them


def test_the_manager_opens_the_managers_pages_and_the_header_links_them(manager_web):
    for url in MANAGER_PAGES:
        assert manager_web.get(url).status_code == 200, url
    header = manager_web.get("/upload/").content.decode()
    assert 'href="/clinic/members/"' in header and 'href="/clinic/audit/"' in header


def test_a_clinician_of_the_clinic_gets_404_and_no_links(owner_web):
    for url in MANAGER_PAGES:
        assert owner_web.get(url).status_code == 404, url
    assert 'href="/clinic/members/"' not in owner_web.get("/upload/").content.decode()


def test_a_manager_of_another_clinic_sees_only_their_own(client, django_user_model, other_clinic, manager, clinic):
    stranger = django_user_model.objects.create_user("sam", password="sam-password-1")
    other_clinic.add_member(stranger, "manager")
    audit(_request(manager), Action.VIEWED_HISTORY, clinic=clinic)
    verified_login(client, stranger)

    members = client.get("/clinic/members/").content.decode()
    assert "sam" in members and "mary" not in members
    assert "mary" not in client.get("/clinic/audit/").content.decode()


def test_an_anonymous_client_is_sent_to_log_in(client):
    for url in [*MANAGER_PAGES, "/clinic/switch/"]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url


# --- Members


def test_the_manager_adds_an_existing_user_with_a_role(manager_web, django_user_model, clinic):
    django_user_model.objects.create_user("nina", password="nina-password-1")

    response = manager_web.post("/clinic/members/", {"change": "add", "username": "nina", "role": "clinician"})

    assert response.status_code == 302
    membership = Membership.objects.get(clinic=clinic, user__username="nina")
    assert membership.role == "clinician" and membership.is_current  # her first clinic
    event = AuditEvent.objects.get(action="changed_membership")
    assert event.detail == {"change": "added", "member": "nina", "role": "clinician"}
    assert (event.object_type, event.object_id) == ("membership", membership.pk)


def test_adding_an_unknown_user_says_so_and_adds_nobody(manager_web, clinic):
    response = manager_web.post("/clinic/members/", {"change": "add", "username": "ghost", "role": "clinician"})

    assert response.status_code == 400 and "There is no active account" in response.content.decode()
    assert not AuditEvent.objects.filter(action="changed_membership").exists()


def test_the_manager_changes_a_role_and_removes_a_member(manager_web, owner, clinic):
    membership = Membership.objects.get(user=owner, clinic=clinic)

    manager_web.post("/clinic/members/", {"change": "role", "membership": membership.pk, "role": "manager"})
    assert Membership.objects.get(pk=membership.pk).role == "manager"
    manager_web.post("/clinic/members/", {"change": "remove", "membership": membership.pk})

    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert [e.detail["change"] for e in AuditEvent.objects.filter(action="changed_membership").order_by("id")] == [
        "role",
        "removed",
    ]
    assert AuditEvent.objects.filter(action="changed_membership", object_id=membership.pk).count() == 2


def test_the_last_manager_cannot_leave_and_nothing_is_audited(manager_web, manager, clinic):
    mine = Membership.objects.get(user=manager, clinic=clinic)

    removed = manager_web.post("/clinic/members/", {"change": "remove", "membership": mine.pk})
    demoted = manager_web.post("/clinic/members/", {"change": "role", "membership": mine.pk, "role": "clinician"})

    assert removed.status_code == demoted.status_code == 400
    assert "only manager of Clinic A" in removed.content.decode()
    assert Membership.objects.get(pk=mine.pk).role == "manager"
    assert not AuditEvent.objects.filter(action="changed_membership").exists()


def test_a_manager_cannot_touch_another_clinics_memberships(manager_web, outsider):
    theirs = Membership.objects.get(user=outsider)

    assert manager_web.post("/clinic/members/", {"change": "remove", "membership": theirs.pk}).status_code == 404
    assert manager_web.post("/clinic/members/", {"change": "remove", "membership": "x"}).status_code == 404
    assert Membership.objects.filter(pk=theirs.pk).exists()


# --- The audit log page


def _request(user):
    request = RequestFactory().get("/", REMOTE_ADDR="10.1.2.3")
    request.user = user
    return request


def test_the_audit_log_lists_and_filters_by_user_action_dates_and_patient(manager_web, owner, teammate, clinic):
    patient = make_patient(clinic, "MRN-9")
    image = make_image(owner, lesion=make_lesion(patient))
    audit(_request(owner), Action.VIEWED_IMAGE, image)
    audit(_request(teammate), Action.EXPORTED_CSV, clinic=clinic)
    old = audit(_request(teammate), Action.VIEWED_HISTORY, clinic=clinic)
    AuditEvent._base_manager.filter(pk=old.pk).update(at=timezone.now() - datetime.timedelta(days=40))

    def shown(query: str) -> list[str]:
        page = manager_web.get(f"/clinic/audit/?{query}").content.decode()
        return [action for action, label in Action.choices if f'data-label="What">{label}</td>' in page]

    assert shown("user=alice") == ["viewed_image"]
    assert shown("action=exported_csv") == ["exported_csv"]
    assert shown("patient=MRN-9") == ["viewed_image"]
    assert shown(f"patient=%23{patient.pk}") == ["viewed_image"]  # an erased patient's number
    since = (timezone.localdate() - datetime.timedelta(days=1)).isoformat()
    assert "viewed_history" not in shown(f"date_from={since}")
    assert "Fix the filters" in manager_web.get("/clinic/audit/?patient=nobody").content.decode()


def test_the_audit_log_exports_the_filtered_events_as_csv(manager_web, owner, clinic):
    audit(_request(owner), Action.EXPORTED_CSV, clinic=clinic)

    response = manager_web.get("/clinic/audit/export.csv?user=alice")

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="lesionsite-audit-')
    (row,) = csv_rows(response)
    assert (row["user"], row["action"], row["address"]) == ("alice", "exported_csv", "10.1.2.3")
    assert AuditEvent.objects.filter(action="exported_audit_log", username="mary").count() == 1


def test_reading_the_audit_log_is_itself_audited(manager_web):
    manager_web.get("/clinic/audit/")

    assert AuditEvent.objects.filter(action="viewed_audit_log", username="mary").count() == 1


# --- Switching clinics


def test_a_user_of_two_clinics_switches_and_the_pages_follow(client, owner, other_clinic):
    other_clinic.add_member(owner, "clinician")
    here = make_prediction(owner, image=make_image(owner, original_filename="clinic-a.png"))
    there = make_prediction(owner, image=make_image(owner, clinic=other_clinic, original_filename="clinic-b.png"))
    client.force_login(owner)
    header = client.get("/history/").content.decode()
    assert 'name="clinic"' in header and "Clinic B" in header
    assert "clinic-a.png" in header and "clinic-b.png" not in header

    response = client.post("/clinic/switch/", {"clinic": other_clinic.pk})

    assert response.status_code == 302
    history = client.get("/history/").content.decode()
    assert "clinic-b.png" in history and "clinic-a.png" not in history
    assert client.get(f"/predictions/{here.pk}/").status_code == 404
    assert client.get(f"/predictions/{there.pk}/").status_code == 200
    event = AuditEvent.objects.get(action="switched_clinic")
    assert (event.clinic, event.object_type, event.object_id) == (other_clinic, "clinic", other_clinic.pk)


def test_switching_to_a_clinic_you_are_not_in_is_a_404(owner_web, other_clinic, owner):
    assert owner_web.post("/clinic/switch/", {"clinic": other_clinic.pk}).status_code == 404
    assert Membership.objects.get(user=owner).is_current


def test_a_user_of_one_clinic_sees_its_name_and_no_switcher(owner_web):
    page = owner_web.get("/history/").content.decode()
    assert "Clinic: <span data-clinic>Clinic A</span>" in page and 'id="clinic-switch"' not in page


# --- Platform admins manage clinics in the Django admin


def test_staff_make_a_clinic_and_give_it_a_manager_in_the_admin(admin_client, django_user_model):
    nina = django_user_model.objects.create_user("nina", password="nina-password-1")

    response = admin_client.post(
        "/admin/classifier/clinic/add/",
        {"name": "Dermatology, St Elsewhere", "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "0",
         "memberships-0-user": nina.pk, "memberships-0-role": "manager"},
    )  # fmt: skip

    assert response.status_code == 302, response.content.decode()[:3000]
    membership = Membership.objects.get(user=nina)
    assert (membership.clinic.name, membership.role, membership.is_current) == (
        "Dermatology, St Elsewhere",
        "manager",
        True,
    )
    assert admin_client.get("/admin/classifier/clinic/").status_code == 200
    # A second clinic for her: a member again, but she keeps working in the first.
    admin_client.post(
        "/admin/classifier/clinic/add/",
        {"name": "Second clinic", "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "0",
         "memberships-0-user": nina.pk, "memberships-0-role": "clinician"},
    )  # fmt: skip
    assert list(Membership.objects.filter(user=nina, is_current=True)) == [membership]
    assert Membership.objects.filter(user=nina).count() == 2


def test_clinicians_do_not_reach_the_clinic_admin(owner_web):
    assert owner_web.get("/admin/classifier/clinic/").status_code == 302
