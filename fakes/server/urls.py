"""The fakes-only server's routes: the fakes under /fakes/ (as in the main app), and the vendors'
own paths at the root, so ``http://HOST:PORT`` works as LlamaParse's base URL and
``http://HOST:PORT/v1`` as OpenAI's."""
from django.urls import include, path

from fakes.urls import llamaparse_patterns, openai_patterns

urlpatterns = [
    path("fakes/", include("fakes.urls")),
    path("", include(llamaparse_patterns)),
    path("", include(openai_patterns)),
]
