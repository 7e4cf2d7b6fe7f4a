"""Chunks record the model and size of their vector, so searches compare vectors of one model only."""
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('ingestion', '0003_sweeper_every_half_minute'),
    ]

    operations = [
        migrations.AddField(
            model_name='chunk',
            name='embedding_dimensions',
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='chunk',
            name='embedding_model',
            field=models.CharField(blank=True, default='', max_length=100),
        ),
        # Vectors stored before this came from the model their document's current job recorded.
        migrations.RunSQL(
            """
            UPDATE ingestion_chunk AS c
               SET embedding_model = j.embed_model, embedding_dimensions = vector_dims(c.embedding)
              FROM ingestion_document AS d JOIN ingestion_job AS j ON j.id = d.current_job_id
             WHERE c.document_id = d.id AND c.embedding IS NOT NULL AND c.embedding_model = ''
            """,
            migrations.RunSQL.noop,
        ),
    ]
