from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0004_engine')]

    initial = False

    operations = [
        ops.AddField(
            model_name='JobType',
            name='backoff_strategy',
            field=fields.CharField(default='exponential', db_default='exponential', max_length=16),
        ),
    ]
