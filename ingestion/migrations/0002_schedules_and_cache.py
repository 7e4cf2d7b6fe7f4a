"""The sweeper and heartbeat schedules, and the shared cache table django-q2's cluster status uses."""
from django.core.management import call_command
from django.db import migrations


def create_schedules(apps, schema_editor):
    Schedule = apps.get_model("django_q", "Schedule")
    for name, func in (("ingestion-sweeper", "ingestion.tasks.sweep"), ("ingestion-heartbeat", "ingestion.tasks.heartbeat")):
        Schedule.objects.update_or_create(name=name, defaults={"func": func, "schedule_type": "I", "minutes": 1,
                                                               "repeats": -1})


def remove_schedules(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name__in=["ingestion-sweeper", "ingestion-heartbeat"]).delete()


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("ingestion", "0001_initial"), ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more")]

    operations = [
        migrations.RunPython(create_schedules, remove_schedules),
        migrations.RunPython(create_cache_table, migrations.RunPython.noop),
    ]
