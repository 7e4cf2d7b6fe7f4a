"""The fakes-only server (``manage.py runfakes``): settings, URLs and the WSGI application."""
