# InnoSystem appliance image: `innosystem serve` (API + embedded workers) on port 8080.
# The same image runs `innosystem worker`, `migrate`, `seed` and `plugins` via the command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

COPY . /app

# A regular (non-editable) install: the image must not depend on the source tree's layout.
# Every processor plugin shipped under plugins/ goes into the same pip run, so its dependency
# on `innosystem` resolves to the package being installed here.
RUN set -eu; \
    plugins=""; \
    for dir in /app/plugins/*/; do \
        if [ -f "${dir}pyproject.toml" ]; then plugins="$plugins $dir"; fi; \
    done; \
    pip install --no-cache-dir /app $plugins; \
    rm -rf /app/build /app/*.egg-info; \
    useradd --system --uid 10001 --home-dir /data --no-create-home innosystem; \
    mkdir -p /data; \
    chown innosystem:innosystem /data

# Listen on every interface inside the container; keep the SQLite file (default database) on
# the volume; a packaged install cannot find the seed file next to its sources, so name it.
ENV INNOSYSTEM_HOST=0.0.0.0 \
    INNOSYSTEM_DATA_DIR=/data \
    INNOSYSTEM_SEED_FILE=/app/seed/seed.toml

# /app holds innosystem.toml (every key at its default); mount your own over it or set env vars.
WORKDIR /app
USER innosystem
VOLUME /data
EXPOSE 8080

# 503 (database or broker down) raises in urlopen, so the check fails as it should.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('INNOSYSTEM_PORT', '8080') + '/health', timeout=4)"]

CMD ["innosystem", "serve"]
