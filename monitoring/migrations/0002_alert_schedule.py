"""The django-q2 schedule that evaluates the alert rules every minute."""
from django.db import migrations

SCHEDULE_NAME = "monitoring-alerts"


def create_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.update_or_create(
        name=SCHEDULE_NAME, defaults={"func": "monitoring.tasks.evaluate_alerts", "schedule_type": "I", "minutes": 1,
                                      "repeats": -1})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name=SCHEDULE_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0001_alert"),
                    ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
