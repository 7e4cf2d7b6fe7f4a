"""A second sweeper schedule, half a minute after the first: the sweeper runs about every 30 s.

django-q2 schedules have a one-minute resolution; two staggered ones let a job whose worker was
killed resume within a minute (a 30 s lease plus at most a 30 s wait for the next sweep).
"""
from datetime import timedelta

from django.db import migrations
from django.utils import timezone


def create_schedule(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(name="ingestion-sweeper-offset", defaults={
        "func": "ingestion.tasks.sweep", "schedule_type": "I", "minutes": 1, "repeats": -1,
        "next_run": timezone.now() + timedelta(seconds=30)})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="ingestion-sweeper-offset").delete()


class Migration(migrations.Migration):
    dependencies = [("ingestion", "0002_schedules_and_cache")]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
