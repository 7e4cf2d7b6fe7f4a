"""Routes of the fakes: LlamaParse under /fakes/llamaparse/, OpenAI under /fakes/openai/v1/."""
from django.urls import path, re_path

from fakes import control_views, llamaparse_views, openai_views
from fakes.tally import tallied

llamaparse_routes = []
for prefix in ("api/parsing/", "api/v1/parsing/"):
    llamaparse_routes += [
        path(f"llamaparse/{prefix}upload", tallied("llamaparse", llamaparse_views.upload)),
        path(f"llamaparse/{prefix}job/<str:job_id>", tallied("llamaparse", llamaparse_views.job_status)),
        re_path(rf"^llamaparse/{prefix}job/(?P<job_id>[^/]+)/result/(?P<result_type>markdown|text|json)$",
                tallied("llamaparse", llamaparse_views.job_result)),
    ]

urlpatterns = llamaparse_routes + [
    path("openai/v1/embeddings", tallied("openai", openai_views.create_embeddings)),
    path("openai/v1/models", openai_views.list_models),
    path("control/faults/<str:service>/", control_views.faults_view),
]
