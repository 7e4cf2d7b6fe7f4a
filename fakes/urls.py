"""Routes of the fakes: LlamaParse under /fakes/llamaparse/, OpenAI under /fakes/openai/v1/.

``llamaparse_patterns`` and ``openai_patterns`` are also mounted at the root of the fakes-only
server (``manage.py runfakes``), where the base URLs look like the vendors' own hosts.
"""
from django.urls import include, path, re_path

from fakes import control_views, llamaparse_views, openai_views

llamaparse_patterns = []
for prefix in ("api/parsing/", "api/v1/parsing/"):
    llamaparse_patterns += [
        path(f"{prefix}upload", llamaparse_views.upload),
        path(f"{prefix}job/<str:job_id>", llamaparse_views.job_status),
        re_path(rf"^{prefix}job/(?P<job_id>[^/]+)/result/(?P<raw>raw/)?(?P<result_type>markdown|text)$",
                llamaparse_views.job_result),
        re_path(rf"^{prefix}job/(?P<job_id>[^/]+)/result/(?P<result_type>json)$", llamaparse_views.job_result),
    ]

openai_patterns = [
    path("v1/embeddings", openai_views.create_embeddings),
    path("v1/models", openai_views.list_models),
    path("v1/models/<str:model>", openai_views.retrieve_model),
]

urlpatterns = [
    path("llamaparse/", include(llamaparse_patterns)),
    path("openai/", include(openai_patterns)),
    path("control/faults/<str:service>/", control_views.faults_view),
    path("control/requests/<str:service>/", control_views.requests_view),
    path("health/", control_views.health),
]
