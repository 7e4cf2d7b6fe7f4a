from django.apps import AppConfig


class IngestionConfig(AppConfig):
    name = "ingestion"
    verbose_name = "Document ingestion"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from ingestion import checks  # noqa: F401  (registers the system checks)

        from navigator.processes import prepare_qcluster_worker

        post_spawn.connect(prepare_qcluster_worker, dispatch_uid="navigator-worker-start")
