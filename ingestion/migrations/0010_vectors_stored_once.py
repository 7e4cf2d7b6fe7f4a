import django.contrib.postgres.indexes
from django.db import migrations, models


class Migration(migrations.Migration):
    """Passages find vectors of identical text among the stored passages' vectors (by text_sha), so
    each vector is written once. Vectors stored before this carry an empty text_sha: they are searched
    as before and simply never lent to another passage."""

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
        migrations.AddIndex(
            model_name="chunkvector",
            index=django.contrib.postgres.indexes.HashIndex(fields=["text_sha"], name="chunkvector_text"),
        ),
    ]
