from django.urls import path

from ingestion.api import views

urlpatterns = [
    path("documents/", views.DocumentListCreateView.as_view(), name="document-list"),
    path("documents/<uuid:pk>/", views.DocumentDetailView.as_view(), name="document-detail"),
    path("search/", views.SearchView.as_view(), name="search"),
    path("webhooks/llamaparse/<uuid:job_id>/", views.LlamaParseWebhookView.as_view(), name="llamaparse-webhook"),
]
