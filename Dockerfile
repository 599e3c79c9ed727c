# One image for the web server and the Celery workers (docker-compose.yml picks the command).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
# The volumes mounted on /data/* start as copies of these folders: owned by the app's user, so it can write them.
RUN useradd --create-home --uid 1000 lesionsite \
    && mkdir -p /data/media /data/trained-models /data/backups /app/var \
    && chown -R lesionsite /data /app/var /app/models
USER lesionsite

EXPOSE 8000
CMD ["gunicorn", "lesionsite.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3"]
