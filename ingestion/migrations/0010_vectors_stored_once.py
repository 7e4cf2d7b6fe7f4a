import django.contrib.postgres.indexes
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models


class Migration(migrations.Migration):
    """Passages find vectors of identical text among the stored passages' vectors (by text_sha), so
    each vector is written once. Vectors stored before this carry an empty text_sha: they are searched
    as before and simply never lent to another passage.

    The index is built concurrently (outside a transaction): on a large vector table a plain build would
    block every write, and so every embed stage, until it finished."""

    atomic = False

    dependencies = [
        ("ingestion", "0009_passage_copies_without_constraints"),
    ]

    operations = [
        migrations.AddField(
            model_name="chunkvector",
            name="text_sha",
            field=models.CharField(default="", max_length=64),
            preserve_default=False,
        ),
        AddIndexConcurrently(
            model_name="chunkvector",
            index=django.contrib.postgres.indexes.HashIndex(fields=["text_sha"], name="chunkvector_text"),
        ),
    ]
