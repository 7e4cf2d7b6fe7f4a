"""Vectors move out of the passage rows into ingestion_chunkvector, stored inline.

pgvector gives halfvec EXTERNAL storage, so every 1536-dimension vector (3 KB) lived in TOAST and a
search over a member's 5,000 passages touched ~16,000 pages, one wide row and its TOAST chunks per
passage. In a narrow table with PLAIN storage two vectors share a page and the scan reads only
vectors; the embed stage inserts them instead of rewriting every wide passage row. The embedding
cache's vectors are stored inline for the same reason. Existing vectors are copied over.
"""
import django.db.models.deletion
import pgvector.django.halfvec
from django.conf import settings
from django.db import migrations, models

COPY_VECTORS = """
INSERT INTO ingestion_chunkvector (chunk_id, owner_id, document_id, model, dimensions, embedding)
SELECT id, owner_id, document_id, embedding_model, embedding_dimensions, embedding
  FROM ingestion_chunk WHERE embedding IS NOT NULL AND embedding_model <> '' AND embedding_dimensions IS NOT NULL
"""
COPY_BACK = """
UPDATE ingestion_chunk AS c SET embedding = v.embedding, embedding_model = v.model, embedding_dimensions = v.dimensions
  FROM ingestion_chunkvector AS v WHERE v.chunk_id = c.id
"""
INLINE = """
ALTER TABLE ingestion_chunkvector ALTER COLUMN embedding SET STORAGE PLAIN;
ALTER TABLE ingestion_embeddingcache ALTER COLUMN embedding SET STORAGE PLAIN;
UPDATE ingestion_embeddingcache SET embedding = embedding::text::halfvec;
"""
EXTERNAL = "ALTER TABLE ingestion_embeddingcache ALTER COLUMN embedding SET STORAGE EXTERNAL;"


class Migration(migrations.Migration):

    dependencies = [
        ('ingestion', '0005_audit_record_webhook_delivery'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ChunkVector',
            fields=[
                ('chunk', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='vector', serialize=False, to='ingestion.chunk')),
                ('model', models.CharField(max_length=100)),
                ('dimensions', models.PositiveIntegerField()),
                ('embedding', pgvector.django.halfvec.HalfVectorField()),
                ('document', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+', to='ingestion.document')),
                ('owner', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'indexes': [models.Index(fields=['owner', 'model', 'dimensions'], name='chunkvector_owner_model')],
            },
        ),
        migrations.RunSQL(INLINE, EXTERNAL),
        migrations.RunSQL(COPY_VECTORS, COPY_BACK),
        migrations.RemoveField(
            model_name='chunk',
            name='embedding',
        ),
        migrations.RemoveField(
            model_name='chunk',
            name='embedding_dimensions',
        ),
        migrations.RemoveField(
            model_name='chunk',
            name='embedding_model',
        ),
    ]
