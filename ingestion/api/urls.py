from django.urls import path, re_path

from ingestion.api import views

urlpatterns = [
    path("auth/token/", views.TokenView.as_view(), name="auth-token"),
    path("documents/", views.DocumentListCreateView.as_view(), name="document-list"),
    path("documents/<uuid:pk>/", views.DocumentDetailView.as_view(), name="document-detail"),
    path("documents/<uuid:pk>/events/", views.DocumentEventsView.as_view(), name="document-events"),
    path("documents/<uuid:pk>/chunks/", views.DocumentChunksView.as_view(), name="document-chunks"),
    path("documents/<uuid:pk>/file/", views.DocumentFileView.as_view(), name="document-file"),
    path("documents/<uuid:pk>/reprocess/", views.DocumentReprocessView.as_view(), name="document-reprocess"),
    path("jobs/<uuid:pk>/", views.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<uuid:pk>/retry/", views.JobRetryView.as_view(), name="job-retry"),
    path("jobs/<uuid:pk>/cancel/", views.JobCancelView.as_view(), name="job-cancel"),
    path("search/", views.SearchView.as_view(), name="search"),
    path("webhooks/llamaparse/<uuid:job_id>/<str:token>/", views.LlamaParseWebhookView.as_view(),
         name="llamaparse-webhook"),
    re_path(r"^", views.ApiNotFoundView.as_view(), name="api-not-found")  # anything else, newlines included,
]
