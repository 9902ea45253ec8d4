"""HTTP layer: one blueprint per resource, thin handlers over innosystem.services."""

from quart import Quart

from innosystem.api import artifacts, job_types, jobs, schedules, system, tenants
from innosystem.api.errors import register_error_handlers


def register_api(app: Quart) -> None:
    for module in (system, jobs, job_types, tenants, artifacts, schedules):
        app.register_blueprint(module.bp)
    register_error_handlers(app)
