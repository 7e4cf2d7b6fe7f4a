"""The full-text index moves out of the passage rows into ingestion_chunksearch.

Storing passages and building their full-text entries become two writes, timed apart: the english
tsvector is ~95% of the cost of storing a passage (PostgreSQL's text parser), and the text ranking
scans a narrow table of (owner, document, length, tsvector). Existing entries are built from the
passages' text. The passages' single-column owner and document indexes go: (owner, document) and
(document, chunker_version, ordinal) already serve every lookup.
"""
import django.contrib.postgres.indexes
import django.contrib.postgres.search
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

BUILD = """
INSERT INTO ingestion_chunksearch (chunk_id, owner_id, document_id, token_count, search_vector)
SELECT id, owner_id, document_id, token_count, to_tsvector('english', translate(text, '/', ' '))
  FROM ingestion_chunk
"""


class Migration(migrations.Migration):

    dependencies = [
        ('ingestion', '0007_search_vector_slashes_as_spaces'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ChunkSearch',
            fields=[
                ('chunk', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='search', serialize=False, to='ingestion.chunk')),
                ('token_count', models.PositiveIntegerField()),
                ('search_vector', django.contrib.postgres.search.SearchVectorField()),
                ('document', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='ingestion.document')),
                ('owner', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
        ),
        migrations.RunSQL(BUILD, "DELETE FROM ingestion_chunksearch"),
        migrations.AddIndex(
            model_name='chunksearch',
            index=django.contrib.postgres.indexes.GinIndex(fields=['search_vector'], name='chunksearch_vector_gin'),
        ),
        migrations.RemoveIndex(
            model_name='chunk',
            name='chunk_search_vector_gin',
        ),
        migrations.RemoveField(
            model_name='chunk',
            name='search_vector',
        ),
        migrations.AlterField(
            model_name='chunk',
            name='document',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='chunks', to='ingestion.document'),
        ),
        migrations.AlterField(
            model_name='chunk',
            name='owner',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
    ]
