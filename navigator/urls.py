from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from monitoring.health import HealthView
from monitoring.metrics import metrics_view
from monitoring.views import favicon

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("ingestion.api.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("health/", HealthView.as_view(), name="health"),
    path("monitoring/", include("monitoring.urls")),
    path("metrics", metrics_view, name="metrics"),
    path("favicon.ico", favicon),
]
if settings.FAKES_ENABLED:
    urlpatterns.append(path("fakes/", include("fakes.urls")))
