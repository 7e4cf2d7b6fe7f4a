"""Audit trail of reads of members' document content and of deletions (health information).

Written by the API for every chunk listing, search hit, file download and delete; staff read it in
the admin, where nobody can add, change or delete a record.
"""
from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass

from django.conf import settings

from ingestion.models import AuditRecord


@dataclass(frozen=True)
class ClientInfo:
    """Where a request came from, as far as the server can tell."""

    ip_address: str | None
    user_agent: str

    @classmethod
    def from_request(cls, request) -> "ClientInfo":
        meta = request.META
        address = meta.get("REMOTE_ADDR", "")
        proxies = settings.API_TRUSTED_PROXY_COUNT
        forwarded = [part.strip() for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if proxies and forwarded:
            # Each trusted proxy appends the address it saw; the client is the one the outermost proxy saw.
            address = forwarded[-min(proxies, len(forwarded))]
        try:
            address = str(ipaddress.ip_address(address))
        except ValueError:
            address = None
        return cls(ip_address=address, user_agent=meta.get("HTTP_USER_AGENT", "")[:300])


def audit_record(*, actor, action: str, document_id, document_owner_id: int | None, client: ClientInfo,
                 detail: dict | None = None) -> AuditRecord:
    """Append one audit record. ``detail`` holds ids and counts, never document text."""
    return AuditRecord.objects.create(actor=actor, actor_username=actor.get_username(), action=action,
                                      document_id=document_id, document_owner_id=document_owner_id,
                                      detail=detail or {}, ip_address=client.ip_address,
                                      user_agent=client.user_agent)


def audit_search_hits(*, actor, client: ClientInfo, hits, mode: str) -> list[AuditRecord]:
    """One record per document whose chunks a search returned, naming the chunks and their ranks."""
    by_document: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for rank, hit in enumerate(hits, start=1):
        by_document[str(hit.document_id)].append((rank, str(hit.chunk_id)))
    records = [AuditRecord(actor=actor, actor_username=actor.get_username(),
                           action=AuditRecord.Action.SEARCH_HITS_READ, document_id=document_id,
                           document_owner_id=actor.pk, ip_address=client.ip_address, user_agent=client.user_agent,
                           detail={"mode": mode, "chunk_ids": [c for _, c in ranked], "ranks": [r for r, _ in ranked]})
               for document_id, ranked in by_document.items()]
    return AuditRecord.objects.bulk_create(records)
