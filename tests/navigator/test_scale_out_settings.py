"""Scaling out is configuration: the Redis broker and S3-compatible storage are chosen by environment alone."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROBE = ("import django, json; django.setup(); from django.conf import settings; "
         "from django.core.files.storage import storages; store = storages['default']; "
         "print(json.dumps({'broker': 'redis' if 'redis' in settings.Q_CLUSTER else 'orm', "
         "'queue': settings.Q_CLUSTER['name'], 'storage': type(store).__name__, "
         "'bucket': getattr(store, 'bucket_name', None)}))")


def probe(**env) -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "DJANGO_SETTINGS_MODULE": "navigator.settings", **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_defaults_are_the_orm_broker_and_local_disk():
    found = probe()
    assert found["broker"] == "orm" and found["storage"] == "FileSystemStorage" and found["queue"] == "navigator"


def test_redis_broker_s3_storage_and_queue_name_from_the_environment():
    found = probe(REDIS_URL="redis://127.0.0.1:6379/0", STORAGE_S3_BUCKET="navigator-documents",
                  STORAGE_S3_ENDPOINT_URL="http://127.0.0.1:9000", QCLUSTER_NAME="navigator-eu")
    assert found == {"broker": "redis", "queue": "navigator-eu", "storage": "S3Storage",
                     "bucket": "navigator-documents"}
