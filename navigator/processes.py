"""Start-up of long-running processes (qcluster workers, gunicorn workers): load what they will use
before their first task or request, then keep it out of full garbage collections."""
from __future__ import annotations

import gc
import importlib
import os

# What every stage uses: imported when a worker starts rather than during its first document.
WORKER_MODULES = ("ingestion.tasks", "ingestion.providers.openai_embeddings", "ingestion.providers.llamaparse",
                  "ingestion.providers.pdf_text", "numpy")


_frozen_in: int | None = None  # the process whose start-up objects were frozen


def freeze_startup_objects() -> None:
    """Keep the objects a process loads at start-up (modules, settings, models, URL patterns: ~170,000
    in a worker) out of the garbage collector's full collections, once per process.

    A full collection walks every tracked object: ~80 ms in a worker, at moments set by allocation
    counts, so a stage that allocates much (a 4 MB embeddings answer, hundreds of passages) paid a
    pause of that size at random. Frozen objects are never freed, which is what start-up objects
    are anyway; what the process creates afterwards is collected as before (Python's ``gc.freeze``)."""
    global _frozen_in
    if _frozen_in == os.getpid():
        return
    gc.collect()
    gc.freeze()
    _frozen_in = os.getpid()


def prepare_qcluster_worker(**kwargs) -> None:
    """django-q2's ``post_spawn``: a new worker process loads the pipeline, then freezes it. Not in
    django-q2's sync mode, where tasks run inside the calling process (a test, a request)."""
    from django_q.conf import Conf

    if Conf.SYNC:
        return
    for module in WORKER_MODULES:
        importlib.import_module(module)
    warm_provider_clients()
    freeze_startup_objects()


def warm_provider_clients() -> None:
    """Make this process's provider clients now (kept in their pools): creating one loads the TLS trust
    store and the SDK's request classes, ~50-90 ms that the worker's first document paid otherwise.
    No request is sent."""
    from django.conf import settings

    from ingestion.providers import llamaparse, openai_embeddings

    if settings.PARSER_BACKEND == "llamaparse":
        llamaparse.LlamaParseClient()
    if settings.EMBEDDING_BACKEND == "openai":
        openai_embeddings.make_client().embeddings  # noqa: B018 (the SDK loads its embeddings API lazily)


def prepare_web_worker() -> None:
    """gunicorn's ``post_worker_init``: load the URL configuration (and with it every view, the API,
    the admin and the fakes: ~1.3 s here) before the worker takes its first request, which would
    otherwise pay for it; then freeze it all."""
    from django.urls import get_resolver

    get_resolver().url_patterns
    importlib.import_module("ingestion.providers.pdf_text")  # uploads are checked with PDFium
    freeze_startup_objects()
