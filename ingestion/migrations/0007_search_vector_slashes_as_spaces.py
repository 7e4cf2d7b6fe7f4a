"""Full-text search reads slashes as spaces: "copay/visit" is indexed as "copay" and "visit".

PostgreSQL's parser takes "copay/visit" or "care/screening/immunization" as one file-path token, so
a search for "copay" or "preventive care" missed the Summary of Benefits rows that answer it.
A generated column's expression cannot be altered in place, so the column and its index are
rebuilt (every passage's tsvector is recomputed).
"""
import django.contrib.postgres.indexes
import django.contrib.postgres.search
from django.db import migrations, models


def vector_field(expression):
    return models.GeneratedField(db_persist=True, expression=django.contrib.postgres.search.SearchVector(
        expression, config='english'), output_field=django.contrib.postgres.search.SearchVectorField())


class Migration(migrations.Migration):

    dependencies = [
        ('ingestion', '0006_chunk_vectors_table'),
    ]

    operations = [
        migrations.RemoveIndex(model_name='chunk', name='chunk_search_vector_gin'),
        migrations.RemoveField(model_name='chunk', name='search_vector'),
        migrations.AddField(
            model_name='chunk',
            name='search_vector',
            field=vector_field(models.Func(models.F('text'), models.Value('/'), models.Value(' '),
                                           function='translate', output_field=models.TextField())),
        ),
        migrations.AddIndex(
            model_name='chunk',
            index=django.contrib.postgres.indexes.GinIndex(fields=['search_vector'], name='chunk_search_vector_gin'),
        ),
    ]
