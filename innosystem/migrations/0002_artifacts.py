from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Artifact',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='artifacts', on_delete=OnDelete.RESTRICT)),
                ('job', fields.ForeignKeyField('models.Job', source_field='job_id', null=True, db_constraint=True, to_field='id', related_name='artifacts', on_delete=OnDelete.CASCADE)),
                ('kind', fields.CharField(max_length=8)),
                ('name', fields.CharField(max_length=255)),
                ('content_type', fields.CharField(max_length=255)),
                ('size_bytes', fields.BigIntField()),
                ('sha256', fields.CharField(max_length=64)),
                ('storage_key', fields.CharField(max_length=600)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'artifacts', 'app': 'models', 'unique_together': (('job', 'name'),), 'indexes': [Index(fields=['customer_id', 'created_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
    ]
