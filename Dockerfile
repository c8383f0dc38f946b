# syntax=docker/dockerfile:1
# One image for every process of the platform (three APIs, three workers, migrations, keys);
# docker-compose.yml picks the command. Base image version: PYTHON_IMAGE in .env.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
FROM ${PYTHON_IMAGE}

# PYTHONPATH=/app: imports come from the sources copied into /app for every entry point.
# gunicorn and `python -m` put the working directory on sys.path anyway; this makes the console
# scripts (referrals-migrate, referrals-token) do the same, so migration scripts and templates
# are always read from the tree that was copied in.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first, cached until pyproject.toml changes: install the project from empty
# package stubs, then install the real sources over it without touching the dependencies.
COPY pyproject.toml requirements.lock README.md ./
RUN mkdir -p services shared \
 && touch services/__init__.py shared/__init__.py \
 && pip install --no-cache-dir -c requirements.lock . \
 && rm -rf services shared build ./*.egg-info

COPY contracts/ contracts/
COPY shared/ shared/
COPY services/ services/
COPY deploy/ deploy/

# var/keys belongs to the app user, so a named volume mounted there starts out writable by it.
RUN pip install --no-cache-dir --no-deps --force-reinstall . \
 && rm -rf build ./*.egg-info \
 && mkdir -p var/keys \
 && chown -R app:app var

# Numeric, so that Kubernetes (runAsNonRoot) can check it is not root without reading /etc/passwd.
USER 10001:10001
EXPOSE 8000

CMD ["sh", "-c", "printf '%s\\n' \
 'referrals-platform image: give a command, e.g.' \
 '  referrals-token --ensure-keys                      create var/keys/dev-*.pem (dev only)' \
 '  referrals-migrate intake                           apply that service'\\''s migrations' \
 '  gunicorn -c deploy/gunicorn.conf.py '\\''services.intake.app:create_app()'\\''' \
 '                                                     an API (PORT, WEB_CONCURRENCY)' \
 '  python -m services.intake.worker                   its worker (consumer, outbox relay)' \
 '  the same for advocacy (PROVIDER_ID) and notifications.' \
 'docker-compose.yml runs the whole stack.'"]
