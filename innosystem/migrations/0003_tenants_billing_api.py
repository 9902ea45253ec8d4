from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise import fields
from tortoise.indexes import Index
from tortoise.migrations.schema_editor.sqlite import SqliteSchemaEditor


class PostgresOnly:
    """Job idempotency moved to its own table, so the jobs table loses two columns and a unique
    constraint. On SQLite, Tortoise 1.1.9 can only do that by rebuilding the table, and that
    rebuild drops the table's indexes and, with foreign keys on, its DROP TABLE cascades to
    job_events and artifacts. So on SQLite the two nullable columns stay in place, unused
    (NULL keys never collide under the unique constraint); the migration state drops them
    everywhere."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        if isinstance(state_editor, SqliteSchemaEditor):
            return
        await super().database_forward(app_label, old_state, new_state, state_editor)


class RemoveUniqueTogether(PostgresOnly, ops.RemoveConstraint):
    pass


class RemoveColumn(PostgresOnly, ops.RemoveField):
    pass


class Migration(migrations.Migration):
    dependencies = [('models', '0002_artifacts')]

    initial = False

    operations = [
        ops.CreateModel(
            name='IdempotencyKey',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('customer_id', fields.UUIDField()),
                ('key', fields.CharField(max_length=255)),
                ('fingerprint', fields.CharField(max_length=64)),
                ('status_code', fields.IntField()),
                ('response', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'idempotency_keys', 'app': 'models', 'unique_together': (('customer_id', 'key'),), 'indexes': [Index(fields=['created_at'])], 'pk_attr': 'id'},
            bases=['Model'],
        ),
        RemoveUniqueTogether(
            model_name='Job',
            name=None,
            fields=['customer', 'idempotency_key'],
        ),
        RemoveColumn(model_name='Job', name='idempotency_key'),
        RemoveColumn(model_name='Job', name='request_hash'),
        ops.AddIndex(
            model_name='Job',
            index=Index(fields=['job_type_id', 'created_at']),
        ),
        ops.AddIndex(
            model_name='Job',
            index=Index(fields=['project_id', 'created_at']),
        ),
        ops.AddField(
            model_name='JobType',
            name='status',
            field=fields.CharField(default='active', db_default='active', max_length=16),
        ),
    ]
