import pytest
from django.core.files.storage import default_storage
from fpdf import FPDF

from ingestion import services
from ingestion.errors import PermanentError
from ingestion.models import Chunk, Document, Event, Job
from ingestion.statuses import Status


def test_upload_stores_the_file_and_starts_a_job(member, pdf_bytes):
    # when
    result = services.document_upload(owner=member, data=pdf_bytes, filename="policy.pdf")
    # then
    assert not result.duplicate
    assert result.document.page_count == 3 and result.document.status == Status.UPLOADED
    assert default_storage.open(result.document.storage_path).read() == pdf_bytes
    assert result.job.document_id == result.document.id
    assert Event.objects.filter(job=result.job, type="job_created").exists()


def test_same_bytes_from_the_same_member_are_one_document(member, other_member, pdf_bytes):
    first = services.document_upload(owner=member, data=pdf_bytes, filename="a.pdf")
    again = services.document_upload(owner=member, data=pdf_bytes, filename="b.pdf")
    others = services.document_upload(owner=other_member, data=pdf_bytes, filename="a.pdf")
    assert again.duplicate and again.document.id == first.document.id
    assert not others.duplicate and others.document.id != first.document.id
    assert Job.objects.filter(document=first.document).count() == 1


@pytest.mark.parametrize("data, code", [
    (b"", "PARSE_EMPTY_FILE"),
    (b"Sample Insurance Policy\nPolicy Number: INS-12345", "PARSE_NOT_A_PDF"),
    (b"%PDF-1.7\n1 0 obj <</Type /Catalog", "PARSE_CORRUPT_PDF"),
])
def test_bad_uploads_are_refused_with_a_code_and_leave_nothing(member, data, code):
    with pytest.raises(PermanentError) as error:
        services.document_upload(owner=member, data=data, filename="bad.pdf")
    assert error.value.code == code and error.value.message.endswith(".")
    assert not Document.objects.exists()


def test_truncated_pdf_is_refused(member, pdf_bytes):
    with pytest.raises(PermanentError) as error:
        services.document_upload(owner=member, data=pdf_bytes[: len(pdf_bytes) // 3], filename="cut.pdf")
    assert error.value.code == "PARSE_CORRUPT_PDF"


def test_encrypted_pdf_is_refused(member):
    pdf = FPDF()
    pdf.set_encryption(owner_password="owner", user_password="secret")
    pdf.add_page()
    pdf.set_font("Helvetica")
    pdf.cell(0, 10, "Confidential")
    with pytest.raises(PermanentError) as error:
        services.document_upload(owner=member, data=bytes(pdf.output()), filename="locked.pdf")
    assert error.value.code == "PARSE_ENCRYPTED_PDF"


def test_page_cap_is_enforced(member, pdf_bytes, settings):
    settings.UPLOAD_MAX_PAGES = 2
    with pytest.raises(PermanentError) as error:
        services.document_upload(owner=member, data=pdf_bytes, filename="long.pdf")
    assert error.value.code == "UPLOAD_TOO_MANY_PAGES"


def test_filenames_lose_path_parts(member, pdf_bytes):
    result = services.document_upload(owner=member, data=pdf_bytes, filename="../../etc/passwd.pdf")
    assert result.document.filename == "passwd.pdf"
    assert "passwd" not in result.document.storage_path


def test_delete_removes_rows_and_files(member, pdf_bytes, django_capture_on_commit_callbacks):
    document = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").document
    path = document.storage_path
    with django_capture_on_commit_callbacks(execute=True):  # files go once the deletion commits
        services.document_delete(document=document)
    assert not default_storage.exists(path)
    assert not Job.objects.exists() and not Chunk.objects.exists() and not Event.objects.exists()


def test_cancel_ends_a_running_job_and_retry_starts_a_new_one(member, pdf_bytes):
    job = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").job
    services.job_cancel(job=job)
    job.refresh_from_db()
    assert job.status == Status.CANCELLED and job.document.status == Status.CANCELLED
    new_job = services.job_retry(job=job)
    assert new_job.id != job.id and new_job.status == Status.UPLOADED
    with pytest.raises(PermanentError):
        services.job_cancel(job=job)


def test_over_size_uploads_are_refused(member, pdf_bytes, settings):
    settings.UPLOAD_MAX_BYTES = 1000
    with pytest.raises(PermanentError) as error:
        services.document_upload(owner=member, data=pdf_bytes, filename="big.pdf")
    assert error.value.code == "UPLOAD_TOO_LARGE" and "limit" in error.value.message
    assert not Document.objects.exists()


def test_long_filenames_are_shortened_keeping_the_extension(member, pdf_bytes):
    result = services.document_upload(owner=member, data=pdf_bytes, filename="a" * 300 + ".pdf")
    assert len(result.document.filename) == 200 and result.document.filename.endswith(".pdf")


def test_only_failed_or_cancelled_jobs_can_be_retried(member, pdf_bytes):
    job = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").job
    with pytest.raises(PermanentError) as error:
        services.job_retry(job=job)
    assert error.value.code == "JOB_NOT_FAILED"


@pytest.mark.django_db(transaction=True)
def test_the_same_bytes_uploaded_concurrently_make_one_document(member, pdf_bytes):
    import hashlib
    import threading
    import time

    from django.db import connection, transaction
    from django.core.files.storage import default_storage

    # given another upload of the same bytes whose transaction is still open
    def other_upload():
        try:
            with transaction.atomic():
                Document.objects.create(owner=member, filename="first.pdf", size=len(pdf_bytes),
                                        file_sha256=hashlib.sha256(pdf_bytes).hexdigest(), storage_path="elsewhere")
                time.sleep(1.0)
        finally:
            connection.close()
    folder = f"documents/{member.pk}"
    before = default_storage.listdir(folder)[1] if default_storage.exists(folder) else []
    thread = threading.Thread(target=other_upload)
    thread.start()
    time.sleep(0.3)
    # when this upload's insert meets the other's row
    result = services.document_upload(owner=member, data=pdf_bytes, filename="second.pdf")
    thread.join()
    # then it answers with the other document, and its own stored file is removed
    assert result.duplicate and result.document.filename == "first.pdf"
    assert Document.objects.count() == 1
    assert sorted(default_storage.listdir(folder)[1]) == sorted(before)


def test_deleting_a_document_someone_else_just_deleted_is_a_no_op(member, pdf_bytes):
    document = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").document
    stale = Document.objects.get(pk=document.pk)  # a second request loaded it too
    services.document_delete(document=document)
    services.document_delete(document=stale)  # no error: there is nothing left to delete
    assert not Document.objects.exists()


def test_retrying_a_later_stage_of_a_document_whose_parsed_pages_are_gone_starts_at_parse(member, pdf_bytes):
    job = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").job
    Job.objects.filter(pk=job.pk).update(status=Status.FAILED_CHUNKING,
                                         stage_times={"parse": {"started": "x", "finished": "y"},
                                                      "chunk": {"started": "z"}})
    Document.objects.filter(pk=job.document_id).update(parsed_path="")
    assert services.job_retry(job=Job.objects.get(pk=job.pk)).start_stage == "parse"


def test_a_failed_job_the_document_has_moved_past_cannot_be_retried(member, pdf_bytes):
    old = services.document_upload(owner=member, data=pdf_bytes, filename="p.pdf").job
    Job.objects.filter(pk=old.pk).update(status=Status.FAILED_PARSE)
    newer = services.job_retry(job=Job.objects.get(pk=old.pk))
    Job.objects.filter(pk=newer.pk).update(status=Status.COMPLETE)
    Document.objects.filter(pk=old.document_id).update(status=Status.COMPLETE)
    # a bulk "retry the failed jobs" meets the old one: the complete document is not processed again
    with pytest.raises(PermanentError) as refused:
        services.job_retry(job=Job.objects.get(pk=old.pk))
    assert refused.value.code == "JOB_SUPERSEDED" and str(newer.pk) in refused.value.message
    assert Document.objects.get(pk=old.document_id).current_job_id == newer.pk
