"""docker-compose.yml cannot be run here (no Docker engine), so its shape is checked by parsing it."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_it_has_web_worker_trainer_redis_and_postgres(compose):
    assert {"web", "worker", "trainer", "redis", "db"} <= set(compose["services"])


def test_training_runs_on_its_own_queue_one_job_at_a_time(compose):
    command = compose["services"]["trainer"]["command"]
    assert "-Q training" in command and "--concurrency 1" in command
    assert "training" not in compose["services"]["worker"]["command"]


def test_webhooks_are_delivered_by_their_own_worker_not_by_the_inference_one(compose):
    services = compose["services"]
    consumers = [name for name, service in services.items() if "-Q webhooks" in str(service.get("command", ""))]
    assert consumers == ["webhooks"]
    assert "webhooks" not in services["worker"]["command"]
    # It reads the same database and broker as the web process that registers the endpoints.
    for key in ("DATABASE_URL", "CELERY_BROKER_URL", "SITE_URL"):
        assert services["webhooks"]["environment"][key] == services["web"]["environment"][key], key
    assert services["webhooks"]["environment"]["SITE_URL"].endswith("https://localhost:8443}")


def test_every_service_has_a_healthcheck(compose):
    for name, service in compose["services"].items():
        assert "test" in service.get("healthcheck", {}), name


def test_web_runs_gunicorn_and_the_worker_consumes_the_inference_queue(compose):
    services = compose["services"]
    assert "gunicorn lesionsite.wsgi" in services["web"]["command"]
    assert "-Q inference" in services["worker"]["command"]
    # Scaling with --scale worker=N needs no fixed container name or host port.
    assert "container_name" not in services["worker"] and "ports" not in services["worker"]


def test_web_and_worker_share_the_database_broker_and_volumes(compose):
    web, worker = compose["services"]["web"], compose["services"]["worker"]
    for key in ("DATABASE_URL", "CELERY_BROKER_URL", "MEDIA_ROOT", "MODEL_ROOT", "TRAINED_MODEL_ROOT"):
        assert web["environment"][key] == worker["environment"][key], key
    assert web["environment"]["DATABASE_URL"].startswith("postgres://")
    assert "@db:5432/" in web["environment"]["DATABASE_URL"]
    assert "@redis:6379/" in web["environment"]["CELERY_BROKER_URL"]
    # The web service alone also mounts the backups volume (manage.py backup runs there).
    assert set(web["volumes"]) - {"backups:/data/backups"} == set(worker["volumes"])
    named = {mount.split(":")[0] for mount in web["volumes"]}
    assert named <= set(compose["volumes"])


def test_the_secret_key_must_be_given(compose):
    assert compose["services"]["web"]["environment"]["SECRET_KEY"].startswith("${SECRET_KEY:?")


def test_the_image_it_builds_exists(compose):
    assert compose["services"]["web"]["build"] == "."
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "requirements.txt" in dockerfile and "FROM python:3.11" in dockerfile


def test_flower_is_optional_and_password_protected(compose):
    flower = compose["services"]["flower"]
    assert flower["profiles"] == ["monitoring"]
    assert "flower" in flower["command"] and "--basic-auth=${FLOWER_BASIC_AUTH:?" in flower["command"]


def test_logs_are_json_in_production(compose):
    assert compose["services"]["web"]["environment"]["LOG_FORMAT"] == "json"


def mounts(service: dict) -> dict[str, str]:
    """Container path → the volume mounted there."""
    return {target: source for source, target in (mount.split(":")[:2] for mount in service["volumes"])}


def test_versions_trained_on_the_site_live_in_a_volume_the_trainer_writes_and_the_workers_read(compose):
    services = compose["services"]
    root = services["trainer"]["environment"]["TRAINED_MODEL_ROOT"]
    assert root != services["trainer"]["environment"]["MODEL_ROOT"]
    volume = mounts(services["trainer"]).get(root)
    assert volume in compose["volumes"]
    for name in ("worker", "web"):  # web: its health check looks at the active version's model file
        assert services[name]["environment"]["TRAINED_MODEL_ROOT"] == root, name
        assert mounts(services[name]).get(root) == volume, name
    # A fresh named volume copies the image's folder there, owner included: the trainer must be able to write it.
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert f"mkdir -p /data/media {root} " in dockerfile and "chown -R lesionsite /data " in dockerfile


def test_web_is_reached_only_through_the_tls_proxy_which_it_trusts(compose):
    services = compose["services"]
    assert "ports" not in services["web"]
    assert services["proxy"]["image"].startswith("caddy:")
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in services["proxy"]["volumes"]
    assert "reverse_proxy web:8000" in (REPO_ROOT / "deploy" / "Caddyfile").read_text()
    assert services["web"]["environment"]["TRUST_X_FORWARDED_PROTO"] == "1"
    assert services["web"]["environment"]["CSRF_TRUSTED_ORIGINS"].endswith("https://localhost:8443}")
    # Plain http is redirected to https, so the health check says https as the proxy does.
    assert "X-Forwarded-Proto" in " ".join(services["web"]["healthcheck"]["test"])


def every_string(node):
    """Every string in the parsed file (values, and the items of command lists)."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from every_string(value)
    elif isinstance(node, list):
        for item in node:
            yield from every_string(item)


SECRETS = ("SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "FLOWER_BASIC_AUTH", "MINIO_ROOT_PASSWORD")


def test_every_secret_is_required_and_none_has_a_default(compose):
    text = "\n".join(every_string(compose))
    for name in SECRETS:
        uses = re.findall(r"\$\{" + name + r"([^}]*)\}", text)
        assert uses, name
        for use in uses:
            assert use.startswith(":?"), f"${{{name}{use}}} must be ${{{name}:?...}}: no default, no start without it"
    assert "lesionsite}" not in text and ":-lesionsite" not in text


def test_postgres_takes_the_required_password_the_app_connects_with(compose):
    services = compose["services"]
    assert services["db"]["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert services["web"]["environment"]["DATABASE_URL"].startswith("postgres://lesionsite:${POSTGRES_PASSWORD:?")


def test_redis_requires_a_password_and_its_health_check_gives_it(compose):
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--requirepass") + 1].startswith("${REDIS_PASSWORD:?")
    assert redis["environment"]["REDISCLI_AUTH"].startswith("${REDIS_PASSWORD:?")
    assert "PONG" in " ".join(redis["healthcheck"]["test"])


def test_every_redis_url_carries_the_password(compose):
    urls = [text for text in every_string(compose) if text.startswith(("redis://", "rediss://"))]
    assert len(urls) >= 2  # the broker and the cache, at least
    for url in urls:
        assert url.split("//", 1)[1].startswith(":${REDIS_PASSWORD:?"), url


def test_only_the_tls_proxy_publishes_a_port(compose):
    for name, service in compose["services"].items():
        if name != "proxy":
            assert "ports" not in service, f"{name} publishes {service['ports']}"
    for mapping in compose["services"]["proxy"]["ports"]:
        assert mapping.endswith((":443", ":80")), mapping


def test_env_example_lists_every_required_variable_and_env_is_never_committed_or_built_in(compose):
    text = "\n".join(every_string(compose))
    required = set(re.findall(r"\$\{(\w+):\?", text))
    example = (REPO_ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?(\w+)=", example, flags=re.MULTILINE))
    assert required <= listed, required - listed
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()
    assert ".env" in (REPO_ROOT / ".dockerignore").read_text().split()


def test_minio_is_optional_unpublished_and_takes_required_credentials(compose):
    services = compose["services"]
    for name in ("minio", "minio-setup"):
        assert services[name]["profiles"] == ["s3"], name
        assert "ports" not in services[name], name
        for key in ("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"):
            assert services[name]["environment"][key].startswith(f"${{{key}:?"), (name, key)
    assert "9000" in services["minio"]["expose"] and "minio-data:/data" in services["minio"]["volumes"]
    assert "minio-data" in compose["volumes"]
    # The setup makes the bucket and the app's own key, limited to that bucket; the app never uses the root key.
    setup = services["minio-setup"]
    assert setup["environment"]["APP_KEY"].startswith("${AWS_ACCESS_KEY_ID:?")
    assert setup["environment"]["APP_SECRET"].startswith("${AWS_SECRET_ACCESS_KEY:?")
    assert "mc mb --ignore-existing store/lesionsite" in setup["entrypoint"]
    assert "arn:aws:s3:::lesionsite/*" in setup["entrypoint"] and "readwrite" not in setup["entrypoint"]
    assert setup["depends_on"]["minio"]["condition"] == "service_healthy"


def test_every_app_service_reads_the_same_object_store_settings(compose):
    services = compose["services"]
    app_services = [name for name, service in services.items() if service.get("image") == "lesionsite:latest"]
    assert {"web", "worker", "trainer", "beat", "webhooks"} <= set(app_services)
    for name in app_services:
        environment = services[name]["environment"]
        assert environment["STORAGE_URL"] == "${STORAGE_URL:-}", name  # empty: the local volumes, as before
        assert environment["AWS_ACCESS_KEY_ID"] == "${AWS_ACCESS_KEY_ID:-}", name
        assert environment["AWS_SECRET_ACCESS_KEY"] == "${AWS_SECRET_ACCESS_KEY:-}", name
        assert "MINIO_ROOT_PASSWORD" not in str(environment), name
    example = (REPO_ROOT / ".env.example").read_text()
    assert "# STORAGE_URL=s3://lesionsite/?endpoint_url=http://minio:9000" in example
