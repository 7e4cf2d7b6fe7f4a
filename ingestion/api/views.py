"""The client API: thin views over services and selectors; every object is the owner's alone.

Objects are always looked up through the member's own rows, so another member's document, job,
chunk or event answers 404 exactly like one that does not exist.
"""
from __future__ import annotations

from django.conf import settings
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404
from django.urls import Resolver404, resolve, reverse
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import NotFound
from rest_framework.filters import OrderingFilter
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from ingestion import audit, search, selectors, services, webhooks
from ingestion.api import serializers as s
from ingestion.api.errors import ApiError, error_response
from ingestion.api.filters import DocumentFilter
from ingestion.api.pagination import StrictLimitOffsetPagination
from ingestion.api.throttles import (AuthAttemptThrottle, StatusPollThrottle, UploadThrottle,
                                     active_jobs_check)
from ingestion.models import AuditRecord, Document, Job

# Multipart framing around the file is a few hundred bytes; this leaves room for long filenames.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
MB = 1024 * 1024  # sizes are shown in binary megabytes, as file managers show them


def error_responses(*statuses: int) -> dict:
    """The documented error responses of an endpoint: all share the one error shape."""
    return {code: OpenApiResponse(s.ErrorSerializer, description=ERROR_DESCRIPTIONS[code]) for code in statuses}


ERROR_DESCRIPTIONS = {
    400: "Invalid input (VALIDATION_ERROR with `field`, or a specific code).",
    401: "No or invalid credentials (AUTH_REQUIRED, AUTH_FAILED).",
    403: "A session-authenticated unsafe request without a valid CSRF token.",
    404: "No such object among yours (NOT_FOUND).",
    409: "The object's state does not allow this now (JOB_ACTIVE, JOB_NOT_FAILED, JOB_ALREADY_ENDED, ...).",
    413: "The upload is larger than the size cap (UPLOAD_TOO_LARGE).",
    415: "Not a PDF (PARSE_NOT_A_PDF) or not a multipart/JSON body (UNSUPPORTED_MEDIA_TYPE).",
    422: "A PDF we cannot accept: corrupt, encrypted, no pages, or over the page cap.",
    429: "A limit was reached; the message says when to retry and Retry-After gives the seconds.",
    503: "A provider we depend on is unavailable; retry after Retry-After seconds.",
}
MEMBER_ERRORS = (401, 403, 429)
RETRY_AFTER = OpenApiParameter("Retry-After", int, OpenApiParameter.HEADER, response=[429, 503],
                               description="Seconds to wait before trying again.")


def member_schema(**kwargs):
    """extend_schema for endpoints that can answer 429/503, whose Retry-After header the schema shows."""
    return extend_schema(parameters=[RETRY_AFTER, *kwargs.pop("parameters", [])], **kwargs)


class MemberView:
    """Member endpoints: reads count against the poll rate, each refusal says which limit and when."""

    write_throttle_classes: tuple = ()
    pagination_class = StrictLimitOffsetPagination

    def get_throttles(self):
        if self.request.method in ("GET", "HEAD"):
            return [StatusPollThrottle()]
        return [throttle() for throttle in self.write_throttle_classes]

    def check_throttles(self, request):
        for throttle in self.get_throttles():
            if not throttle.allow_request(request, self):
                raise throttle.refusal(throttle.wait())

    def owned_document(self) -> Document:
        document = selectors.document_for_owner(owner=self.request.user, document_id=self.kwargs["pk"])
        if document is None:
            raise Http404
        return document

    def owned_job(self) -> Job:
        job = selectors.job_for_owner(owner=self.request.user, job_id=self.kwargs["pk"])
        if job is None:
            raise Http404
        return job


class DocumentListCreateView(MemberView, generics.ListAPIView):
    serializer_class = s.DocumentSerializer
    parser_classes = [MultiPartParser]
    write_throttle_classes = (UploadThrottle,)
    filter_backends = [DjangoFilterBackend, OrderingFilter]
    filterset_class = DocumentFilter
    ordering_fields = ["created_at", "updated_at", "filename", "size", "status", "page_count"]
    ordering = ["-created_at", "id"]

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no member
            return Document.objects.none()
        return selectors.documents_for_owner(owner=self.request.user)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if getattr(self, "_page_ids", None) is not None:
            context["chunk_counts"] = selectors.document_chunk_counts(document_ids=self._page_ids)
        return context

    def paginate_queryset(self, queryset):
        page = super().paginate_queryset(queryset)
        self._page_ids = [document.id for document in (page if page is not None else queryset)]
        return page

    @member_schema(summary="List your documents",
                   responses={200: s.DocumentSerializer(many=True), **error_responses(400, *MEMBER_ERRORS)})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @member_schema(summary="Upload a PDF", request={"multipart/form-data": s.UploadSerializer},
                   responses={201: s.UploadResultSerializer, 200: s.UploadResultSerializer,
                              **error_responses(400, 413, 415, 422, *MEMBER_ERRORS)})
    def post(self, request):
        cap = settings.UPLOAD_MAX_BYTES
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
        if declared > cap + MULTIPART_OVERHEAD_BYTES:
            # Refused before the body is read, so a huge upload costs neither memory nor disk.
            raise ApiError("UPLOAD_TOO_LARGE", f"The upload is {declared / MB:.1f} MB; the limit is "
                           f"{cap / MB:.0f} MB. Split the document or compress it.", 413, "file")
        active_jobs_check(owner=request.user)
        file = request.FILES.get("file")
        if file is None:
            raise ApiError("UPLOAD_NO_FILE", "Send the PDF as a multipart/form-data field named 'file'.", 400, "file")
        if file.size > cap:
            raise ApiError("UPLOAD_TOO_LARGE", f"The file is {file.size / MB:.1f} MB; the limit is "
                           f"{cap / MB:.0f} MB. Split the document or compress it.", 413, "file")
        result = services.document_upload(owner=request.user, data=file.read(), filename=file.name or "")
        body = {"document": s.DocumentSerializer(result.document).data,
                "job": s.JobSerializer(result.job).data if result.job else None,
                "duplicate": result.duplicate,
                "status_url": request.build_absolute_uri(reverse("document-detail", args=[result.document.id]))}
        return Response(body, status=status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED)


class DocumentDetailView(MemberView, generics.RetrieveDestroyAPIView):
    serializer_class = s.DocumentSerializer

    def get_object(self):
        return self.owned_document()

    @member_schema(summary="A document's status, progress, pages, chunks, last error and current job",
                   responses={200: s.DocumentSerializer, **error_responses(404, *MEMBER_ERRORS)})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @member_schema(summary="Delete a document with its jobs, chunks, events and stored files",
                   responses={204: None, **error_responses(404, *MEMBER_ERRORS)})
    def delete(self, request, *args, **kwargs):
        return super().delete(request, *args, **kwargs)

    def perform_destroy(self, document):
        services.document_delete_audited(document=document, actor=self.request.user,
                                         client=audit.ClientInfo.from_request(self.request))


class DocumentEventsView(MemberView, generics.ListAPIView):
    serializer_class = s.EventSerializer

    def get_queryset(self):
        return selectors.events_for_document(document=self.owned_document())

    @member_schema(summary="The document's timeline: every stage start, end, retry and error, oldest first",
                   responses={200: s.EventSerializer(many=True), **error_responses(404, *MEMBER_ERRORS)})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class DocumentChunksView(MemberView, generics.ListAPIView):
    serializer_class = s.ChunkSerializer

    def get_queryset(self):
        self.document = self.owned_document()
        return selectors.chunks_for_document(document=self.document)

    @member_schema(summary="The document's chunks with page span and heading path, in order",
                   responses={200: s.ChunkSerializer(many=True), **error_responses(404, *MEMBER_ERRORS)})
    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        results = response.data["results"] if isinstance(response.data, dict) else response.data
        audit.audit_record(actor=request.user, action=AuditRecord.Action.CHUNKS_READ, document_id=self.document.id,
                           document_owner_id=self.document.owner_id, client=audit.ClientInfo.from_request(request),
                           detail={"chunk_ids": [str(chunk["id"]) for chunk in results]})
        return response


class PDFRenderer(BaseRenderer):
    media_type = "application/pdf"
    format = "pdf"
    charset = None
    render_style = "binary"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


class DocumentFileView(MemberView, APIView):
    # The file itself is streamed as it was uploaded; PDF is offered so that `Accept: application/pdf`
    # is not refused with 406.
    renderer_classes = [JSONRenderer, PDFRenderer]

    def handle_exception(self, exc):
        response = super().handle_exception(exc)
        # An error is JSON (a code and a sentence) whatever the client asked for: a PDF renderer would
        # write the error's keys as the body.
        self.request.accepted_renderer, self.request.accepted_media_type = JSONRenderer(), "application/json"
        return response

    @member_schema(summary="Download the uploaded PDF",
                   responses={(200, "application/pdf"): OpenApiTypes.BINARY, **error_responses(404, *MEMBER_ERRORS)})
    def get(self, request, pk):
        document = self.owned_document()
        handle = default_storage.open(document.storage_path, "rb")
        audit.audit_record(actor=request.user, action=AuditRecord.Action.FILE_DOWNLOADED, document_id=document.id,
                           document_owner_id=document.owner_id, client=audit.ClientInfo.from_request(request),
                           detail={"size": document.size})
        return FileResponse(handle, as_attachment=True, filename=document.filename, content_type="application/pdf")


class DocumentReprocessView(MemberView, APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    @member_schema(summary="Process the document again from a stage (a new job)", request=s.ReprocessSerializer,
                   responses={201: s.JobSerializer, **error_responses(400, 404, 409, 415, *MEMBER_ERRORS)})
    def post(self, request, pk):
        document = self.owned_document()
        params = s.ReprocessSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        active_jobs_check(owner=request.user)
        job = services.job_start(document=document, from_stage=params.validated_data["from_stage"])
        return Response(s.JobSerializer(job).data, status=status.HTTP_201_CREATED)


class JobDetailView(MemberView, generics.RetrieveAPIView):
    serializer_class = s.JobSerializer

    def get_object(self):
        return self.owned_job()

    @member_schema(summary="A job's status, progress, stage times, counts, cost and last error",
                   responses={200: s.JobSerializer, **error_responses(404, *MEMBER_ERRORS)})
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)


class JobRetryView(MemberView, APIView):
    @member_schema(summary="Retry a failed or cancelled job from the stage that failed (a new job)", request=None,
                   responses={201: s.JobSerializer, **error_responses(404, 409, *MEMBER_ERRORS)})
    def post(self, request, pk):
        job = self.owned_job()
        active_jobs_check(owner=request.user)
        new_job = services.job_retry(job=job)
        return Response(s.JobSerializer(new_job).data, status=status.HTTP_201_CREATED)


class JobCancelView(MemberView, APIView):
    @member_schema(summary="Cancel a job that has not ended", request=None,
                   responses={200: s.JobSerializer, **error_responses(404, 409, *MEMBER_ERRORS)})
    def post(self, request, pk):
        job = services.job_cancel(job=self.owned_job())
        return Response(s.JobSerializer(job).data)


class SearchView(MemberView, APIView):
    parser_classes = [JSONParser]

    @member_schema(summary="Search your complete documents; ranked chunks with citations",
                   request=s.SearchRequestSerializer,
                   responses={200: s.SearchResponseSerializer,
                              **error_responses(400, 404, 415, 503, *MEMBER_ERRORS)})
    def post(self, request):
        params = s.SearchRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        document_ids = data.get("document_ids")
        if document_ids:
            owned = set(selectors.documents_for_owner(owner=request.user).filter(pk__in=document_ids)
                        .values_list("pk", flat=True))
            if len(owned) != len(set(document_ids)):
                raise ApiError("NOT_FOUND", "One of document_ids is not among your documents.", 404, "document_ids")
        hits = search.search_chunks(owner=request.user, query=data["query"], k=data["k"], mode=data["mode"],
                                    document_ids=document_ids)
        if hits:
            audit.audit_search_hits(actor=request.user, client=audit.ClientInfo.from_request(request), hits=hits,
                                    mode=data["mode"])
        return Response({"results": s.SearchHitSerializer(hits, many=True).data})


class LlamaParseWebhookView(APIView):
    """The parser's callback: addressed to one job by the unguessable token in its URL, not by a user
    (see ingestion.webhooks). The body is never read."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    @extend_schema(summary="Parser callback (LlamaParse webhook_url; the URL's token is the credential)",
                   request={"application/json": OpenApiTypes.OBJECT}, auth=[],
                   responses={202: s.WebhookResultSerializer, 200: s.WebhookResultSerializer,
                              404: OpenApiResponse(s.ErrorSerializer, description="No job waits for a callback at "
                                                   "this address (WEBHOOK_UNKNOWN_JOB).")})
    def post(self, request, job_id, token):
        try:
            outcome = webhooks.llamaparse_webhook_receive(job_id=job_id, token=token)
        except webhooks.WebhookRefused as refused:
            return error_response(refused.code, refused.message, refused.http_status)
        body = {"result": outcome.result, "woke_parse_stage": outcome.woke_parse_stage}
        return Response(body, status=status.HTTP_202_ACCEPTED if outcome.result == "accepted" else status.HTTP_200_OK)


class TokenView(APIView):
    """Username and password for an API token (the same token on every call)."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [AuthAttemptThrottle]
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    def check_throttles(self, request):
        for throttle in self.get_throttles():
            if not throttle.allow_request(request, self):
                raise throttle.refusal(throttle.wait())

    @extend_schema(summary="Get your API token", request=s.TokenRequestSerializer, auth=[], parameters=[RETRY_AFTER],
                   responses={200: s.TokenSerializer, **error_responses(400, 415, 429)})
    def post(self, request):
        s.TokenRequestSerializer(data=request.data).is_valid(raise_exception=True)
        credentials = AuthTokenSerializer(data=request.data, context={"request": request})
        if not credentials.is_valid():
            if set(credentials.errors) == {"non_field_errors"}:
                raise ApiError("AUTH_INVALID_CREDENTIALS", "The username or password is wrong.", 400)
            credentials.is_valid(raise_exception=True)
        token, _ = Token.objects.get_or_create(user=credentials.validated_data["user"])
        return Response({"token": token.key})


class ApiNotFoundView(APIView):
    """Any other address under the API: the JSON 404, whatever DEBUG says."""

    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = []

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if not request.path.endswith("/"):
            try:
                match = resolve(request.path + "/")
            except Resolver404:
                match = None
            if match is not None and match.url_name != "api-not-found":
                raise ApiError("NOT_FOUND", f"Every API address ends with a slash: use {request.path}/", 404)
        raise NotFound()
