from django.db import migrations


class Migration(migrations.Migration):
    """The embedding cache now holds search-query vectors only (docs/decisions/0005). Rows written
    before held every document vector too, including those of documents deleted since; they go.
    A query asked again after this pays for its vector once more."""

    dependencies = [
        ("ingestion", "0010_vectors_stored_once"),
    ]

    operations = [
        migrations.RunSQL("DELETE FROM ingestion_embeddingcache", reverse_sql=migrations.RunSQL.noop),
    ]
