"""The client API: thin views over services and selectors; every object is the owner's alone."""
from __future__ import annotations

import hashlib
import hmac
import json
import time

from django.conf import settings
from django.http import Http404
from django.urls import reverse
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from ingestion import search, selectors, services
from ingestion.api import serializers as s
from ingestion.api.errors import error_response
from ingestion.models import Job
from ingestion.pipeline import parse
from ingestion.statuses import Status


class DocumentListCreateView(generics.ListAPIView):
    serializer_class = s.DocumentSerializer
    parser_classes = [MultiPartParser]

    def get_queryset(self):
        queryset = selectors.documents_for_owner(owner=self.request.user)
        status_filter = self.request.query_params.get("status")
        return queryset.filter(status=status_filter) if status_filter else queryset

    @extend_schema(request=s.UploadSerializer, responses={201: s.DocumentSerializer, 200: s.DocumentSerializer})
    def post(self, request):
        upload = s.UploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        file = upload.validated_data["file"]
        result = services.document_upload(owner=request.user, data=file.read(), filename=file.name)
        body = {"document": s.DocumentSerializer(result.document).data, "duplicate": result.duplicate,
                "status_url": request.build_absolute_uri(reverse("document-detail", args=[result.document.id]))}
        return Response(body, status=status.HTTP_200_OK if result.duplicate else status.HTTP_201_CREATED)


class DocumentDetailView(generics.RetrieveDestroyAPIView):
    serializer_class = s.DocumentSerializer

    def get_object(self):
        document = selectors.document_for_owner(owner=self.request.user, document_id=self.kwargs["pk"])
        if document is None:
            raise Http404
        return document

    def perform_destroy(self, document):
        services.document_delete(document=document)


class SearchView(APIView):
    @extend_schema(request=s.SearchRequestSerializer, responses=s.SearchHitSerializer(many=True))
    def post(self, request):
        params = s.SearchRequestSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        hits = search.search_chunks(owner=request.user, query=params.validated_data["query"],
                                    k=params.validated_data["k"], mode=params.validated_data["mode"],
                                    document_ids=params.validated_data.get("document_ids"))
        return Response({"results": s.SearchHitSerializer(hits, many=True).data})


class LlamaParseWebhookView(APIView):
    """The parser's callback. Authenticated by an HMAC-SHA256 signature, not by a user."""

    authentication_classes = []
    permission_classes = [AllowAny]

    @extend_schema(request=None, responses={202: None})
    def post(self, request, job_id):
        raw = request.body
        timestamp = request.headers.get("X-Webhook-Timestamp", "")
        signature = request.headers.get("X-Webhook-Signature", "")
        expected = "sha256=" + hmac.new(settings.LLAMAPARSE_WEBHOOK_SECRET.encode(), timestamp.encode() + b"." + raw,
                                        hashlib.sha256).hexdigest()
        if not hmac.compare_digest(signature, expected):
            return error_response("WEBHOOK_BAD_SIGNATURE", "The webhook signature does not match.", 401)
        try:
            age = abs(time.time() - int(timestamp))
        except ValueError:
            age = float("inf")
        if age > settings.WEBHOOK_TOLERANCE_SECONDS:
            return error_response("WEBHOOK_STALE", "The webhook timestamp is outside the accepted window.", 401)
        job = Job.objects.filter(pk=job_id).first()
        if job is None:
            raise Http404
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = {}
        if payload.get("job_id") and payload.get("job_id") != job.parse_job_id:
            return error_response("WEBHOOK_WRONG_JOB", "The webhook is for another parser job.", 409)
        services.event_record(job=job, type="webhook_received", stage="parse",
                              message=f"The parser reported {payload.get('status', 'an update')}.",
                              payload={"status": payload.get("status")})
        if job.status in (Status.UPLOADED, Status.PARSE_QUEUED) and not job.lease_owner:
            # Only a wake-up: the parse stage reads the result itself, so a webhook racing a poll
            # (or arriving twice) still finishes the job once.
            Job.objects.filter(pk=job.pk).update(next_attempt_at=None)
            services.job_enqueue(job_id=job.id, stage="parse")
        parse.notify_parse_done(job.id)  # a worker polling this parser job wakes at once
        return Response(status=status.HTTP_202_ACCEPTED)
