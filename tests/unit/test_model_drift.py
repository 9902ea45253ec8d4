"""Models and migrations must not drift: a model change without its migration would pass on a
fresh test database (if the schema were generated) yet break every existing installation."""

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import asyncio, tempfile, os
    from tortoise.cli.cli import tortoise_cli_context
    from tortoise.migrations.autodetector import MigrationAutodetector
    from innosystem.config import load_settings
    from innosystem.db import tortoise_config

    async def main():
        path = os.path.join(tempfile.mkdtemp(), "drift.sqlite3")
        config = tortoise_config(load_settings(env={"INNOSYSTEM_DATABASE_URL": f"sqlite://{path}"}))
        async with tortoise_cli_context(config) as ctx:
            detector = MigrationAutodetector(ctx.apps, config["apps"])
            writers = await detector.changes()
        for writer in writers:
            print("PENDING", writer.app_label, writer.name)
        print("checked")

    asyncio.run(main())
    """
)


def test_models_match_migrations():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "checked" in result.stdout
    assert "PENDING" not in result.stdout, (
        "models changed without a migration; run `tortoise makemigrations` (see docs)\n"
        + result.stdout
    )
