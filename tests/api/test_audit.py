"""Audit records: written for every content read and delete, shown to staff, never editable in the admin."""
from __future__ import annotations

from django.contrib.auth import get_user_model
from django.test import Client

from ingestion.models import AuditRecord


def test_every_content_read_and_delete_is_recorded_with_who_what_and_where(api, member, complete_document):
    # when the member reads chunks, searches, downloads and deletes
    headers = {"HTTP_USER_AGENT": "chat-assistant/1.0", "REMOTE_ADDR": "203.0.113.7"}
    api.get(f"/api/v1/documents/{complete_document.id}/chunks/", **headers)
    api.post("/api/v1/search/", {"query": "deductible", "mode": "text"}, format="json", **headers)
    api.get(f"/api/v1/documents/{complete_document.id}/file/", **headers)
    api.delete(f"/api/v1/documents/{complete_document.id}/", **headers)
    # then one record each, in order, naming the member, the document and the client
    records = list(AuditRecord.objects.order_by("created_at", "id"))
    assert [r.action for r in records] == ["chunks_read", "search_hits_read", "file_downloaded", "document_deleted"]
    assert {(r.actor_id, r.actor_username, r.document_id, r.ip_address, r.user_agent) for r in records} == {
        (member.id, "member-a", complete_document.id, "203.0.113.7", "chat-assistant/1.0")}
    # and no record holds document text
    assert all("deductible" not in str(r.detail).lower() for r in records)


def test_status_reads_are_not_content_and_write_no_record(api, complete_document):
    api.get(f"/api/v1/documents/{complete_document.id}/")
    api.get(f"/api/v1/documents/{complete_document.id}/events/")
    api.get("/api/v1/documents/")
    assert not AuditRecord.objects.exists()


def test_client_address_comes_from_the_trusted_proxy(api, api_settings, complete_document):
    api_settings.API_TRUSTED_PROXY_COUNT = 1
    api.get(f"/api/v1/documents/{complete_document.id}/chunks/", REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR="198.51.100.1, 198.51.100.23")
    assert AuditRecord.objects.get().ip_address == "198.51.100.23"


def test_forwarded_header_is_ignored_without_a_trusted_proxy(api, complete_document):
    api.get(f"/api/v1/documents/{complete_document.id}/chunks/", REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR="198.51.100.1")
    assert AuditRecord.objects.get().ip_address == "10.0.0.2"


def test_record_outlives_the_member(api, member, complete_document):
    api.delete(f"/api/v1/documents/{complete_document.id}/")
    member.delete()
    record = AuditRecord.objects.get()
    assert record.actor is None and record.actor_username == "member-a"


def test_admin_shows_audit_records_read_only_even_to_superusers(api, complete_document):
    # given a record and a superuser
    api.get(f"/api/v1/documents/{complete_document.id}/chunks/")
    record = AuditRecord.objects.get()
    admin = get_user_model().objects.create_superuser("root", "root@example.org", "pw")
    browser = Client()
    browser.force_login(admin)
    base = "/admin/ingestion/auditrecord/"
    # then it can be listed and viewed
    listing = browser.get(base)
    assert listing.status_code == 200 and "member-a" in listing.content.decode()
    view = browser.get(f"{base}{record.pk}/change/")
    assert view.status_code == 200 and 'name="_save"' not in view.content.decode()
    # and never added, changed or deleted
    assert browser.get(f"{base}add/").status_code == 403
    assert browser.post(f"{base}{record.pk}/change/", {"actor_username": "someone-else"}).status_code == 403
    assert browser.post(f"{base}{record.pk}/delete/", {"post": "yes"}).status_code == 403
    assert browser.post(base, {"action": "delete_selected", "_selected_action": [record.pk]}).status_code in (200, 302)
    record.refresh_from_db()
    assert record.actor_username == "member-a" and AuditRecord.objects.count() == 1


def test_members_cannot_open_the_admin(member):
    browser = Client()
    browser.force_login(member)
    assert browser.get("/admin/ingestion/auditrecord/").status_code == 302
