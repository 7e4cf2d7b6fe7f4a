"""WSGI application of the fakes-only server (``gunicorn fakes.server.wsgi``; ``manage.py runfakes`` runs it)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fakes.server.settings")

application = get_wsgi_application()
