"""Where raw uploads and parsed pages live, through Django's storage API (local disk or S3-compatible)."""
from __future__ import annotations

import json
import secrets

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage


def raw_file_save(*, owner_id: int, data: bytes) -> str:
    # Unguessable names: a storage listing or a leaked path reveals neither owner data nor other files.
    return default_storage.save(f"documents/{owner_id}/{secrets.token_urlsafe(24)}.pdf", ContentFile(data))


def raw_file_read(path: str) -> bytes:
    with default_storage.open(path, "rb") as handle:
        return handle.read()


def parsed_pages_save(*, document_id, pages: list[str]) -> str:
    body = json.dumps({"pages": pages}, ensure_ascii=False).encode()
    return default_storage.save(f"parsed/{document_id}-{secrets.token_urlsafe(12)}.json", ContentFile(body))


def parsed_pages_read(path: str) -> list[str]:
    with default_storage.open(path, "rb") as handle:
        return json.loads(handle.read())["pages"]


def file_delete(path: str) -> None:
    if path and default_storage.exists(path):
        default_storage.delete(path)
