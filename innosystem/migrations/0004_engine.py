from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0003_tenants_billing_api')]

    initial = False

    operations = [
        ops.CreateModel(
            name='JobAttempt',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('job', fields.ForeignKeyField('models.Job', source_field='job_id', db_constraint=True, to_field='id', related_name='attempt_rows', on_delete=OnDelete.CASCADE)),
                ('number', fields.IntField()),
                ('runner_id', fields.CharField(max_length=128)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('outcome', fields.CharField(default='running', max_length=16)),
                ('error_type', fields.CharField(null=True, max_length=64)),
                ('error_message', fields.TextField(null=True, unique=False)),
                ('traceback', fields.TextField(null=True, unique=False)),
            ],
            options={'table': 'job_attempts', 'app': 'models', 'unique_together': (('job', 'number'),), 'pk_attr': 'id', 'table_description': 'One delivery of a job that was claimed and run: who ran it, when, and how it ended.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Schedule',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('customer', fields.ForeignKeyField('models.Customer', source_field='customer_id', db_constraint=True, to_field='id', related_name='schedules', on_delete=OnDelete.RESTRICT)),
                ('project', fields.ForeignKeyField('models.Project', source_field='project_id', null=True, db_constraint=True, to_field='id', related_name='schedules', on_delete=OnDelete.RESTRICT)),
                ('job_type', fields.ForeignKeyField('models.JobType', source_field='job_type_id', db_constraint=True, to_field='id', related_name='schedules', on_delete=OnDelete.RESTRICT)),
                ('name', fields.CharField(default='', max_length=200)),
                ('input_data', fields.JSONField(encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('priority', fields.CharField(null=True, max_length=8)),
                ('cron', fields.CharField(max_length=200)),
                ('timezone', fields.CharField(default='UTC', max_length=64)),
                ('enabled', fields.BooleanField(default=True)),
                ('next_run_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_run_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('last_job_id', fields.UUIDField(null=True)),
                ('last_error', fields.TextField(null=True, unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'schedules', 'app': 'models', 'indexes': [Index(fields=['enabled', 'next_run_at']), Index(fields=['customer_id', 'created_at']), Index(fields=['created_at', 'id'])], 'pk_attr': 'id', 'table_description': "A recurring job: one job per cron tick, created by whichever process's sweeper claims the"},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Job',
            name='cancel_requested_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Job',
            name='progress',
            field=fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads),
        ),
        ops.AddField(
            model_name='Job',
            name='schedule_id',
            field=fields.UUIDField(null=True),
        ),
        ops.AddField(
            model_name='JobType',
            name='batch_max_failed_items',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='Runner',
            name='failed_count',
            field=fields.IntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name='Runner',
            name='processed_count',
            field=fields.IntField(default=0, db_default=0),
        ),
    ]
