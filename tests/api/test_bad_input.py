"""Bad input: each refusal is a 4xx with its documented code and leaves no row and no file behind."""
from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from fpdf import FPDF

from ingestion import services
from ingestion.models import AuditRecord, Document, Event, Job


def _encrypted_pdf() -> bytes:
    pdf = FPDF()
    pdf.set_encryption(owner_password="owner", user_password="secret")
    pdf.add_page()
    pdf.set_font("Helvetica")
    pdf.cell(0, 10, "Confidential")
    return bytes(pdf.output())


def _nothing_stored(stored_files) -> bool:
    return (not Document.objects.exists() and not Job.objects.exists() and not Event.objects.exists()
            and stored_files() == [])


@pytest.mark.parametrize("case, status, code", [
    ("not_a_pdf", 415, "PARSE_NOT_A_PDF"),
    ("truncated", 422, "PARSE_CORRUPT_PDF"),
    ("empty", 400, "PARSE_EMPTY_FILE"),
    ("over_size", 413, "UPLOAD_TOO_LARGE"),
    ("over_page_cap", 422, "UPLOAD_TOO_MANY_PAGES"),
    ("encrypted", 422, "PARSE_ENCRYPTED_PDF"),
])
def test_bad_upload_is_refused_with_its_code_and_leaves_nothing(api, api_settings, pdf_bytes, stored_files,
                                                                case, status, code):
    # given
    data = {"not_a_pdf": b"Sample Insurance Policy\nPolicy Number: INS-12345\n" * 20,
            "truncated": pdf_bytes[: len(pdf_bytes) // 3],
            "empty": b"",
            "over_size": pdf_bytes,
            "over_page_cap": pdf_bytes,
            "encrypted": _encrypted_pdf()}[case]
    if case == "over_size":
        api_settings.UPLOAD_MAX_BYTES = len(pdf_bytes) - 1
    if case == "over_page_cap":
        api_settings.UPLOAD_MAX_PAGES = 2
    # when
    response = api.post("/api/v1/documents/", {"file": SimpleUploadedFile("policy.pdf", data,
                                                                          content_type="application/pdf")},
                        format="multipart")
    # then
    assert response.status_code == status, response.json()
    error = response.json()["error"]
    assert error["code"] == code and error["field"] == "file"
    assert error["message"].endswith(".") and len(error["message"]) > 30
    assert _nothing_stored(stored_files)


def test_upload_declaring_a_body_over_the_cap_is_refused_before_it_is_read(api, api_settings, pdf_bytes,
                                                                           stored_files):
    api_settings.UPLOAD_MAX_BYTES = 1000
    response = api.post("/api/v1/documents/", {"file": SimpleUploadedFile("big.pdf", pdf_bytes * 40)},
                        format="multipart")
    assert response.status_code == 413 and response.json()["error"]["code"] == "UPLOAD_TOO_LARGE"
    assert _nothing_stored(stored_files)


@pytest.mark.parametrize("parts, status, code", [
    ({"file": [SimpleUploadedFile(f"p{n}.pdf", b"%PDF-1.4 tiny") for n in range(101)]}, 400, "TOO_MANY_FILES"),
    ({**{f"field{n}": "x" for n in range(1001)}}, 400, "TOO_MANY_FIELDS"),
], ids=["101-files", "1001-fields"])
def test_a_request_django_refuses_to_read_is_answered_with_a_code_not_a_500(api, stored_files, parts, status, code):
    response = api.post("/api/v1/documents/", parts, format="multipart")
    assert response.status_code == status and response.json()["error"]["code"] == code
    assert "per request" in response.json()["error"]["message"] or "fields" in response.json()["error"]["message"]
    assert _nothing_stored(stored_files) and not Document.objects.exists()


def test_a_search_body_over_the_servers_limit_is_413(api, api_settings):
    api_settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    response = api.post("/api/v1/search/", {"query": "copay " * 400}, format="json")
    assert response.status_code == 413 and response.json()["error"]["code"] == "REQUEST_TOO_LARGE"


def test_path_in_filename_is_dropped_and_the_file_is_stored_under_an_unguessable_name(api, pdf_bytes, stored_files):
    response = api.post("/api/v1/documents/", {"file": SimpleUploadedFile("../../etc/passwd.pdf", pdf_bytes)},
                        format="multipart")
    assert response.status_code == 201
    document = Document.objects.get()
    assert response.json()["document"]["filename"] == document.filename == "passwd.pdf"
    [stored] = stored_files()
    assert stored == document.storage_path and "passwd" not in stored and ".." not in stored
    assert len(stored.rsplit("/", 1)[-1]) >= 32  # 24 random bytes, base64url


def test_very_long_filename_is_capped(api, pdf_bytes):
    response = api.post("/api/v1/documents/", {"file": SimpleUploadedFile("x" * 300 + ".pdf", pdf_bytes)},
                        format="multipart")
    filename = response.json()["document"]["filename"]
    assert len(filename) <= 200 and filename.endswith(".pdf")


def test_missing_file_field_is_refused(api, stored_files):
    response = api.post("/api/v1/documents/", {"document": "policy.pdf"}, format="multipart")
    assert response.status_code == 400
    assert response.json()["error"] == {"code": "UPLOAD_NO_FILE", "field": "file",
                                        "message": "Send the PDF as a multipart/form-data field named 'file'."}
    assert _nothing_stored(stored_files)


def test_upload_as_json_is_refused_as_unsupported_media_type(api, stored_files):
    response = api.post("/api/v1/documents/", {"file": "JVBERi0xLjQ="}, format="json")
    assert response.status_code == 415 and response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert _nothing_stored(stored_files)


@pytest.mark.parametrize("body, field", [
    ({"query": "copay", "k": "many"}, "k"),
    ({"query": ["copay"]}, "query"),
    ({"query": "copay", "k": 0}, "k"),
    ({"query": "copay", "document_ids": "all"}, "document_ids"),
    ({"query": "copay", "document_ids": ["not-a-uuid"]}, "document_ids.0"),
    ({"query": "copay", "mode": "psychic"}, "mode"),
    ({"k": 3}, "query"),
])
def test_wrong_json_types_in_search_are_refused_with_the_field(api, body, field):
    response = api.post("/api/v1/search/", body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == "VALIDATION_ERROR" and response.json()["error"]["field"] == field
    assert not AuditRecord.objects.exists()


def test_blank_query_is_refused(api):
    response = api.post("/api/v1/search/", {"query": "   "}, format="json")
    assert response.status_code == 400 and response.json()["error"]["field"] == "query"


def test_malformed_json_is_refused(api):
    response = api.generic("POST", "/api/v1/search/", '{"query": ', content_type="application/json")
    assert response.status_code == 400 and response.json()["error"]["code"] == "MALFORMED_REQUEST"


@pytest.mark.parametrize("from_stage", ["validate", "everything", 3, None])
def test_unknown_from_stage_is_refused_and_starts_nothing(api, member, pdf_bytes, from_stage):
    document = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").document
    services.job_cancel(job=document.current_job)
    response = api.post(f"/api/v1/documents/{document.id}/reprocess/", {"from_stage": from_stage}, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert response.json()["error"]["field"] == "from_stage"
    assert Job.objects.count() == 1


def test_reprocess_from_chunk_of_a_never_parsed_document_is_refused(api, member, pdf_bytes):
    document = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").document
    services.job_cancel(job=document.current_job)
    response = api.post(f"/api/v1/documents/{document.id}/reprocess/", {"from_stage": "chunk"}, format="json")
    assert response.status_code == 409 and response.json()["error"]["code"] == "JOB_NOT_PARSED"
    assert Job.objects.count() == 1
