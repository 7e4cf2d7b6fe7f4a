from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        migrations.CreateModel(
            name="Alert",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("rule", models.CharField(choices=[("failure_rate", "Job failure rate"), ("backlog_age", "Backlog age"),
                                                   ("worker_heartbeat", "No worker heartbeat"),
                                                   ("provider_error_rate", "Provider error rate")], max_length=40)),
                ("state", models.CharField(choices=[("open", "Open"), ("resolved", "Resolved")], db_index=True,
                                           default="open", max_length=10)),
                ("opened_at", models.DateTimeField(db_index=True)),
                ("resolved_at", models.DateTimeField(blank=True, null=True)),
                ("last_value", models.FloatField(blank=True, null=True)),
                ("threshold", models.FloatField(blank=True, null=True)),
                ("message", models.TextField()),
                ("last_evaluated_at", models.DateTimeField()),
                ("notified", models.JSONField(blank=True, default=list)),
            ],
            options={"ordering": ["-opened_at"]},
        ),
        migrations.AddConstraint(
            model_name="alert",
            constraint=models.UniqueConstraint(condition=models.Q(("state", "open")), fields=("rule",),
                                               name="alert_one_open_per_rule"),
        ),
    ]
