"""Start-up of long-running processes (qcluster workers, gunicorn workers)."""
from __future__ import annotations

import gc
import importlib

# What every stage uses: imported when a worker starts rather than during its first document.
WORKER_MODULES = ("ingestion.tasks", "ingestion.providers.openai_embeddings", "ingestion.providers.llamaparse",
                  "ingestion.providers.pdf_text", "numpy")


def freeze_startup_objects() -> None:
    """Keep the objects a process loads at start-up (modules, settings, URL patterns: ~170,000 in a
    worker) out of the garbage collector's full collections.

    A full collection walks every tracked object: ~80 ms in a worker, at moments set by allocation
    counts, so a stage that allocates much (a 4 MB embeddings answer, hundreds of passages) paid a
    pause of that size at random. Frozen objects are never freed, which is what start-up objects
    are anyway; what the process creates afterwards is collected as before (Python's ``gc.freeze``)."""
    gc.collect()
    gc.freeze()


def prepare_qcluster_worker(**kwargs) -> None:
    """django-q2's ``post_spawn``: a new worker process loads the pipeline, then freezes it."""
    for module in WORKER_MODULES:
        importlib.import_module(module)
    freeze_startup_objects()
