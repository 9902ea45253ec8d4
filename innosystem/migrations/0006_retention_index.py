from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0005_backoff_strategy')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Job',
            index=Index(fields=['status', 'finished_at']),
        ),
    ]
