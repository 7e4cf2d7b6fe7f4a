"""Long-running processes keep their start-up objects out of full garbage collections (in a fresh
interpreter each, as a real worker starts)."""
import subprocess
import sys

from tests.clusters import ROOT

SETUP = "import django, gc, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'navigator.settings'); django.setup(); "


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", SETUP + code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_new_qcluster_worker_loads_the_pipeline_and_freezes_it():
    out = _run("from django_q.signals import post_spawn; import sys; "
               "from ingestion.providers import llamaparse, openai_embeddings; "
               "before = gc.get_freeze_count(); post_spawn.send(sender='django_q', proc_name='Process-1:1'); "
               "print(before, gc.get_freeze_count(), 'ingestion.pipeline.embed' in sys.modules, "
               "len(llamaparse._pool._clients), len(openai_embeddings._pool._clients))")
    before, after, loaded, parser_clients, embedding_clients = out.split()
    assert int(before) == 0 and int(after) > 50_000 and loaded == "True"
    # its provider clients are made before its first document (the pools hand these same ones out)
    assert parser_clients == embedding_clients == "1"


def test_a_gunicorn_worker_loads_every_view_before_its_first_request_and_freezes_them():
    out = _run("import runpy, sys; hooks = runpy.run_path('gunicorn.conf.py'); hooks['post_worker_init'](None); "
               "print(gc.get_freeze_count(), 'navigator.urls' in sys.modules, 'fakes.openai_views' in sys.modules)")
    frozen, urls, fakes = out.split()
    assert int(frozen) > 50_000 and urls == fakes == "True"


def test_django_q_sync_mode_freezes_nothing():
    # sync mode runs each task inside the calling process: freezing there would keep request objects for ever
    out = _run("from django_q.conf import Conf; from django_q.signals import post_spawn; Conf.SYNC = True; "
               "post_spawn.send(sender='django_q', proc_name='sync'); print(gc.get_freeze_count())")
    assert int(out) == 0
