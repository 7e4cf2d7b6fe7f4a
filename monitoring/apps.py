from django.apps import AppConfig


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Monitoring"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_q.signals import post_spawn, pre_execute

        from monitoring.signals import heartbeat_on_task_start, heartbeat_on_worker_start

        post_spawn.connect(heartbeat_on_worker_start, dispatch_uid="monitoring-heartbeat-on-spawn")
        pre_execute.connect(heartbeat_on_task_start, dispatch_uid="monitoring-heartbeat-on-task")
