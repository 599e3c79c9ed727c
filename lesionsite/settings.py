"""Django settings for lesionsite, read from the environment.

The defaults make a fresh checkout run on a laptop: SQLite under var/, a Redis on
127.0.0.1:6379, models from models/. Production sets DATABASE_URL,
CELERY_BROKER_URL, SECRET_KEY, ALLOWED_HOSTS (see README's configuration table).
"""

from __future__ import annotations

import os
import ssl
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from lesionsite.env import envbool, envfloat, envfloats, envint, envlist, envnetworks, envrate, envstorage, envstr
from lesionsite.storages import s3_storage
from training.card import INFERENCE_BACKENDS

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("LESIONSITE_VAR_DIR", str(BASE_DIR / "var")))

DEV_SECRET_KEY = "insecure-local-development-key-do-not-use-in-production"
SECRET_KEY = envstr("SECRET_KEY", DEV_SECRET_KEY)
DEBUG = envbool("DEBUG", False)
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "classifier.admin_config.TwoFactorAdminConfig",  # django.contrib.admin, for verified staff only (two-factor below)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "classifier",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "lesionsite.urls"
WSGI_APPLICATION = "lesionsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "classifier.access.clinic_context",
            ],
        },
    },
]

# --- Database: SQLite locally, PostgreSQL through DATABASE_URL in production and CI.
DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        conn_max_age=envint("DATABASE_CONN_MAX_AGE", 0, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite creates the file, not its folder; the folder (database, media, trained versions) is private.
    VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
    # A file, not memory: integration tests share the test database with a
    # real Celery worker process (they pass it its path). One per test run, so two
    # runs in one checkout never delete each other's database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}
    # Wait for the worker's writes instead of failing with "database is locked".
    # IMMEDIATE: a transaction takes the write lock when it begins, so it waits its
    # turn; a deferred one would begin as a reader and fail at once when its first
    # write cannot upgrade the lock (concurrent uploads got 500s so).
    DATABASES["default"].setdefault("OPTIONS", {}).update(timeout=20, transaction_mode="IMMEDIATE")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


LANGUAGE_CODE = "en-gb"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]

# Uploaded images live under MEDIA_ROOT but are never served from a public URL:
# classifier.views serves each one only to its owner (and admins).
MEDIA_ROOT = Path(envstr("MEDIA_ROOT", str(VAR_DIR / "media")))
# Shipped model versions (in the repository); versions trained on this site go to
# TRAINED_MODEL_ROOT, a data folder, so retraining never writes into the checkout.
MODEL_ROOT = Path(envstr("MODEL_ROOT", str(BASE_DIR / "models")))
TRAINED_MODEL_ROOT = Path(envstr("TRAINED_MODEL_ROOT", str(VAR_DIR / "models")))

# --- Where stored files live: MEDIA_ROOT on this host by default; an S3-compatible store
# (AWS S3, MinIO, Ceph) when STORAGE_URL (or AWS_STORAGE_BUCKET_NAME) names one, so that web,
# workers and trainer on different hosts share the pictures and the site-trained model
# versions (README "Multi-host layout"). Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY.
OBJECT_STORE = envstorage("STORAGE_URL")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
if OBJECT_STORE is not None:
    STORAGES["default"] = s3_storage(
        OBJECT_STORE,
        connect_timeout=envint("STORAGE_CONNECT_TIMEOUT", 3, minimum=1),
        read_timeout=envint("STORAGE_READ_TIMEOUT", 30, minimum=1),
        attempts=envint("STORAGE_MAX_ATTEMPTS", 2, minimum=1),
    )
# Site-trained versions are also put in the object store (under model-versions/<folder>/) so
# that an inference worker on any host can fetch the active one; on the filesystem they stay in
# TRAINED_MODEL_ROOT alone. A worker keeps what it fetched in MODEL_CACHE_DIR.
MODEL_VERSIONS_IN_STORE = envbool("MODEL_VERSIONS_IN_STORE", OBJECT_STORE is not None)
MODEL_CACHE_DIR = Path(envstr("MODEL_CACHE_DIR", str(VAR_DIR / "model-cache")))

# --- Uploads.
UPLOAD_MAX_BYTES = envint("UPLOAD_MAX_BYTES", 20 * 1024 * 1024, minimum=1)
UPLOAD_MAX_PIXELS = envint("UPLOAD_MAX_PIXELS", 50_000_000, minimum=1024)
UPLOAD_MIN_SIDE = envint("UPLOAD_MIN_SIDE", 32, minimum=1)
UPLOAD_MAX_FILES = envint("UPLOAD_MAX_FILES", 100, minimum=1)
# Django's own guard refuses a request with more parts than this before reading them, with a bare
# 400 page; set well above UPLOAD_MAX_FILES so that a request just over our limit gets our clear 413.
DATA_UPLOAD_MAX_NUMBER_FILES = 10 * UPLOAD_MAX_FILES
# Per-user upload requests through the API; over it, 429. Empty or "off": no limit.
UPLOAD_RATE_LIMIT = envrate("UPLOAD_RATE_LIMIT", "300/minute")
# Files above this are spooled to disk while the request is read, not held in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# Stored pictures and thumbnails, and the folders the storage makes for them, are the site's
# account's alone: other accounts on the host must not read patients' pictures.
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

# The cache holds the API's rate-limit counters: shared through Redis when several
# web processes run (docker-compose sets CACHE_URL), in-process memory otherwise.
CACHE_URL = envstr("CACHE_URL", "")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": CACHE_URL}
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# --- Celery (namespace CELERY_ in lesionsite/celery.py).
CELERY_BROKER_URL = envstr("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
# Redis over TLS: a rediss:// URL that does not say how to check the server's certificate has it
# checked against the system's CAs (for such a URL kombu would otherwise only warn and not check).
if CELERY_BROKER_URL.startswith("rediss://") and "ssl_cert_reqs=" not in CELERY_BROKER_URL:
    CELERY_BROKER_USE_SSL = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True  # results live on Prediction rows, not in a result backend
# Retraining has its own queue and worker, so inference is never starved by it.
CELERY_TASK_ROUTES = {
    "worker.tasks.predict": {"queue": "inference"},
    "worker.tasks.retrain": {"queue": "training"},
    "worker.tasks.sweep": {"queue": "inference"},
    # Webhooks have their own queue and worker: a slow receiver never holds up an inference.
    "worker.tasks.deliver_webhook": {"queue": "webhooks"},
    "worker.tasks.send_due_webhooks": {"queue": "webhooks"},
}
CELERY_TASK_DEFAULT_QUEUE = "inference"
# A task is acknowledged only after it ran, and redelivered if its process dies:
# predict() claims rows idempotently, so running twice is harmless.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # a long batch must not hold short uploads hostage
CELERY_TASK_SOFT_TIME_LIMIT = envint("INFERENCE_SOFT_TIME_LIMIT", 120, minimum=1)
CELERY_TASK_TIME_LIMIT = envint("INFERENCE_TIME_LIMIT", 150, minimum=2)
# With acks_late, Redis redelivers an unacknowledged message after this many
# seconds (its default is an hour); longer than the hard time limit.
BROKER_VISIBILITY_TIMEOUT = envint("BROKER_VISIBILITY_TIMEOUT", 300, minimum=1)
# kombu looks for such messages every interval x throttle seconds (10 x 10 by default), so a task
# whose worker died waited up to 100 s more; look every tenth of the timeout instead (one cheap
# sorted-set read of Redis each time).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": BROKER_VISIBILITY_TIMEOUT,
    "unacked_restore_interval": max(1, BROKER_VISIBILITY_TIMEOUT // 10),
    "unacked_restore_throttle": 1,
}
# A prefix on every Redis key the broker uses: separate sites (or test runs) can share one Redis.
if envstr("BROKER_KEY_PREFIX", ""):
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = envstr("BROKER_KEY_PREFIX", "")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# An upload must not hang when Redis is down: fail fast and let the view answer 503.
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery beat sends the sweep: predictions queued longer than SWEEP_QUEUED_AFTER
# seconds (never enqueued: the broker was down) or running past the hard time
# limit (their worker died) are sent again. `make run` and docker-compose run beat.
SWEEP_INTERVAL = envint("SWEEP_INTERVAL", 60, minimum=1)
SWEEP_QUEUED_AFTER = envint("SWEEP_QUEUED_AFTER", 120, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "sweep-stale-work": {"task": "worker.tasks.sweep", "schedule": SWEEP_INTERVAL, "options": {"queue": "inference"}},
    "send-due-webhooks": {
        "task": "worker.tasks.send_due_webhooks",
        "schedule": envint("WEBHOOK_SWEEP_INTERVAL", 30, minimum=1),
        "options": {"queue": "webhooks"},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Inference.
INFERENCE_BATCH_SIZE = envint("INFERENCE_BATCH_SIZE", 32, minimum=1)  # one compiled call per 32 images
# A task with fewer images than a batch also takes other queued predictions (oldest
# first) up to INFERENCE_BATCH_SIZE: single uploads arriving together then share one
# model call instead of paying its fixed cost each (docs/PERFORMANCE.md).
INFERENCE_COALESCE = envbool("INFERENCE_COALESCE", True)
# A result whose top class has a probability below this is shown as uncertain
# (the model card reports how often that happens on the validation split, and how
# accurate such results are). Calibrated probabilities make one bar fit all classes.
UNCERTAIN_BELOW = envfloat("UNCERTAIN_BELOW", 0.5, minimum=0.0, maximum=1.0)
# TensorFlow threads per worker process; 0 lets TensorFlow use every core.
INFERENCE_THREADS = envint("INFERENCE_THREADS", 0, minimum=0)
# "keras": the version's model.keras in TensorFlow. "litert": its model.tflite
# (python -m training.export_litert models/<version>) in LiteRT; the worker then
# never imports TensorFlow, which is most of its memory (see docs/PERFORMANCE.md).
INFERENCE_BACKEND = envstr("INFERENCE_BACKEND", "keras").strip().lower()
if INFERENCE_BACKEND not in INFERENCE_BACKENDS:  # training.card's list, the one the workers know
    raise ImproperlyConfigured(f"INFERENCE_BACKEND={INFERENCE_BACKEND!r} must be one of: {INFERENCE_BACKENDS}")
# A pool process whose resident memory passes this is replaced after its current
# task (never during one); its next task loads the model again. Measured per pool
# process serving the shipped model with its heatmap and OOD check
# (docs/PERFORMANCE.md): ~1,030 MB keras, ~270 MB litert; the defaults (~1.5x,
# ~1.9x) catch growth, not normal use. 0: off.
WORKER_MAX_MEMORY_PER_CHILD_MB = envint(
    "WORKER_MAX_MEMORY_PER_CHILD_MB", 1536 if INFERENCE_BACKEND == "keras" else 512, minimum=0
)
CELERY_WORKER_MAX_MEMORY_PER_CHILD = WORKER_MAX_MEMORY_PER_CHILD_MB * 1024 or None  # Celery counts KiB

# --- Webhooks (classifier.webhook_delivery): signed events POSTed to URLs users register.
# Targets must be https and resolve only to public addresses (server-side request forgery),
# unless DEBUG. This allows addresses in the site's own networks (and plain http to them):
# tests, and on-premises installs whose receivers are inside.
WEBHOOK_ALLOW_PRIVATE_TARGETS = envbool("WEBHOOK_ALLOW_PRIVATE_TARGETS", False)
WEBHOOK_TIMEOUT = envfloat("WEBHOOK_TIMEOUT", 5.0, minimum=0.1)  # seconds to connect, and for the answer
# Seconds before the 2nd, 3rd, ... attempt (the last repeats): a receiver down for a deploy, or
# for an afternoon, still gets its events. Attempts in all, then the delivery is given up.
WEBHOOK_RETRY_DELAYS = envfloats("WEBHOOK_RETRY_DELAYS", [10, 60, 300, 1800, 7200])
WEBHOOK_MAX_ATTEMPTS = envint("WEBHOOK_MAX_ATTEMPTS", 6, minimum=1)
# An endpoint whose deliveries were given up this many times in a row is disabled, with the reason.
WEBHOOK_DISABLE_AFTER = envint("WEBHOOK_DISABLE_AFTER", 5, minimum=1)

# --- Retraining and the quality gate.
# A new version is activated automatically only if its balanced accuracy on the
# held-out images is at most this far below the active version's...
TRAINING_GATE_MAX_BALANCED_ACCURACY_DROP = envfloat("TRAINING_GATE_MAX_BALANCED_ACCURACY_DROP", 0.02, 0.0, 1.0)
# ...and its melanoma recall at its own threshold is at least this.
TRAINING_GATE_MIN_MELANOMA_RECALL = envfloat("TRAINING_GATE_MIN_MELANOMA_RECALL", 0.80, 0.0, 1.0)
# The gate judges only when the held-out (test) and validation parts hold at least this
# many images of every class; a job needs as many to start. 10: below it one image moves
# a class's recall by more than 0.1 (five times the balanced-accuracy tolerance), and even
# at 10 a recall of 0.8 has the 95 % interval 0.49-0.94 (classifier.lib.intervals.wilson_interval(8, 10)).
# HAM10000's own split, which imported images keep, has 17 and 18 dermatofibromas (its
# rarest class) in test and validation, so a site that imported it is never refused.
TRAINING_GATE_MIN_HELD_OUT_PER_CLASS = envint("TRAINING_GATE_MIN_HELD_OUT_PER_CLASS", 10, minimum=1)
# "imagenet" downloads the weights; offline, give the .h5 file's path.
TRAINING_IMAGENET_WEIGHTS = envstr("TRAINING_IMAGENET_WEIGHTS", "imagenet")
TRAINING_MAX_EPOCHS = envint("TRAINING_MAX_EPOCHS", 50, minimum=1)
TRAINING_TIME_LIMIT = envint("TRAINING_TIME_LIMIT", 4 * 3600, minimum=60)
# The training task's hard limit: a minute past the soft one, for the job to record that it stopped.
TRAINING_HARD_TIME_LIMIT = TRAINING_TIME_LIMIT + 60
# A job still 'running' this long after it started lost its worker: the sweep fails it.
TRAINING_ABANDONED_AFTER = TRAINING_TIME_LIMIT + 300
# A prediction still 'running' past its task's hard limit (and a minute) lost its worker: re-sent.
SWEEP_RUNNING_AFTER = CELERY_TASK_TIME_LIMIT + 60

# --- The audit log (classifier.audit): who read or changed which patient's records.
# Events older than this are deleted by `manage.py purge_audit_events` (run it daily, e.g. from
# cron); ten years by default, a common retention period for medical records: set your own.
AUDIT_RETENTION_DAYS = envint("AUDIT_RETENTION_DAYS", 3650, minimum=1)
# How long an upload's Idempotency-Key replays its answer (classifier.idempotency); Stripe keeps 24 h.
IDEMPOTENCY_KEY_HOURS = envint("IDEMPOTENCY_KEY_HOURS", 24, minimum=1)
# Repeated views of one object by one user (a page polling a pending reading) are logged once per this.
AUDIT_REPEAT_SECONDS = envint("AUDIT_REPEAT_SECONDS", 60, minimum=0)
# Behind a reverse proxy, REMOTE_ADDR is the proxy's: with this on, the client's address is the
# last one in X-Forwarded-For (the one the proxy saw). Off by default, since a client can send the
# header itself: turn it on only when a proxy you run always sets it.
TRUST_X_FORWARDED_FOR = envbool("TRUST_X_FORWARDED_FOR", False)

# --- Change flags between consecutive visits of a lesion (classifier.lib.changes, via classifier.records).
# A visit is flagged when the malignancy score rose by more than CHANGE_SCORE_RISE (absolute, 0-1),
# when the most likely class changed, or when the lesion's share of the picture changed by more than
# CHANGE_AREA_FRACTION of its earlier share (relative; only for versions that outline the lesion).
CHANGE_SCORE_RISE = envfloat("CHANGE_SCORE_RISE", 0.10, 0.0, 1.0)
CHANGE_AREA_FRACTION = envfloat("CHANGE_AREA_FRACTION", 0.25, 0.0)

# --- Authentication: signing in, locking out password guessing, sessions, passwords.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "classifier:upload"
LOGOUT_REDIRECT_URL = "login"
# Twelve characters at least (NCSC and NIST advise length over composition rules), not a common
# password, not all digits, not close to the user's name or e-mail address.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
    # Judges nothing: its password_changed hook revokes the user's API tokens (see the class).
    {"NAME": "classifier.tokens.RevokeApiTokensOnPasswordChange"},
]
# An administrator sends a one-time link to set a password (manage.py send_password_reset); it works
# once, and stops working when the password changes or after this many hours.
PASSWORD_RESET_TIMEOUT = envint("PASSWORD_RESET_HOURS", 24, minimum=1) * 3600
# The links in e-mails start with this: the address clinicians open the site at.
SITE_URL = envstr("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
# E-mail goes out through SMTP once EMAIL_HOST is set; otherwise it is printed on the console
# (a laptop's `make run` shows the link there).
EMAIL_HOST = envstr("EMAIL_HOST", "")
EMAIL_BACKEND = (
    "django.core.mail.backends.smtp.EmailBackend" if EMAIL_HOST else "django.core.mail.backends.console.EmailBackend"
)
EMAIL_PORT = envint("EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = envstr("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", True)  # STARTTLS on 587
EMAIL_USE_SSL = envbool("EMAIL_USE_SSL", False)  # TLS from the start, usually port 465
DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "lesionsite <lesionsite@localhost>")

# django-axes counts failed sign-ins on every path that calls authenticate() with the request
# (the login page, the admin's login, POST /api/v1/auth/token/) and refuses further attempts,
# the right password included, per account and, separately, per client address.
INSTALLED_APPS += ["axes"]
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]  # turns a lock into classifier.lockout's answer
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = envint("LOGIN_FAILURE_LIMIT", 5, minimum=1)
# A lock lifts this long after the last failed attempt (attempts while locked extend it).
AXES_COOLOFF_TIME = timedelta(minutes=envint("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True  # a successful sign-in forgets that account's earlier failures
AXES_ENABLE_ACCESS_FAILURE_LOG = True  # each failure is a row (user, address, path; never the password)
AXES_CLIENT_IP_CALLABLE = "classifier.audit.client_address"  # the audit log's address, proxy rule included
AXES_LOCKOUT_CALLABLE = "classifier.lockout.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429

# Two-factor sign-in (classifier.two_factor, on django-otp): an authenticator app's codes and one-time
# recovery codes. Staff and clinic managers must use it; clinicians may, and must when this is on.
# One setting for the site rather than a flag per clinic: a clinician in two clinics would otherwise
# need it in one and not the other, and the code is asked at sign-in, before a clinic is chosen.
INSTALLED_APPS += ["django_otp", "django_otp.plugins.otp_totp", "django_otp.plugins.otp_static"]
_AFTER_AUTH = MIDDLEWARE.index("django.contrib.auth.middleware.AuthenticationMiddleware") + 1
# OTPMiddleware tells whether the session gave a code; the gate keeps an unfinished sign-in on the code step.
MIDDLEWARE[_AFTER_AUTH:_AFTER_AUTH] = [
    "django_otp.middleware.OTPMiddleware",
    "classifier.two_factor_gate.TwoFactorMiddleware",
]
TWO_FACTOR_REQUIRED_FOR_CLINICIANS = envbool("TWO_FACTOR_REQUIRED_FOR_CLINICIANS", False)
OTP_TOTP_ISSUER = envstr("TWO_FACTOR_ISSUER", "lesionsite")  # the account's name in the authenticator app
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # the admin may delete a lost phone's device, never read its secret or codes
AXES_SENSITIVE_PARAMETERS = ["code", "otp"]  # a wrong code is counted as a failed sign-in; never stored as typed

# A page session ends after SESSION_IDLE_TIMEOUT_MINUTES without a request, and when the browser
# closes (the cookie has no expiry date). Django's own settings do it: every request saves the
# session, moving its server-side expiry (what is enforced; a kept cookie is no use after it)
# SESSION_COOKIE_AGE ahead. The cost, one session write per request, is small beside the
# audit log's; a middleware would add code to do the same.
SESSION_IDLE_TIMEOUT_MINUTES = envint("SESSION_IDLE_TIMEOUT_MINUTES", 30, minimum=1)
SESSION_COOKIE_AGE = SESSION_IDLE_TIMEOUT_MINUTES * 60
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# --- REST API.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "classifier.api.authentication.ApiTokenAuthentication",
        "classifier.two_factor_gate.VerifiedSessionAuthentication",  # refuses an unfinished two-factor sign-in
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "classifier.api.pagination.Pagination",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
# API tokens (django-rest-knox, classifier.tokens): stored as SHA-512 digests, one per device, each
# dying API_TOKEN_TTL_HOURS after it was issued. A week by default: a key left in a script, a shell
# history or a lost laptop is of use for a week at most, and a client renews with one POST (or
# its user from the account page). No auto-refresh: a fixed end means a stolen key in steady use
# still dies, and a request costs no write to move the expiry.
KNOX_TOKEN_MODEL = "classifier.ApiToken"
# knox's own migrations create its AuthToken table although the model is swapped for ours: an
# unused table whose foreign key to auth_user stops PostgreSQL from truncating users (test flushes).
# Unmigrated, the app gets no table for a swapped model.
MIGRATION_MODULES = {"knox": None}
REST_KNOX = {
    "TOKEN_TTL": timedelta(hours=envint("API_TOKEN_TTL_HOURS", 24 * 7, minimum=1)),
    "AUTO_REFRESH": False,
    "AUTH_HEADER_PREFIX": "Token",  # what clients sent to DRF's authtoken, README and bench/ included
    "TOKEN_MODEL": KNOX_TOKEN_MODEL,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "lesionsite API",
    "DESCRIPTION": (
        "Upload dermatoscopic images and read the lesion classifier's predictions. A research tool, not a diagnosis."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Named once, so a choice set keeps its name wherever it appears: without this,
    # two choice sets on fields called "status" get names made from a hash (StatusD4fEnum).
    "ENUM_NAME_OVERRIDES": {
        "PredictionStatusEnum": "classifier.models.Prediction.Status",
        "TrainingJobStatusEnum": "classifier.models.TrainingJob.Status",
        "StartFromEnum": "classifier.models.TrainingJob.StartFrom",
        "DiagnosisEnum": "classifier.vocabulary.CLASS_CHOICES",
        "DiagnosisMethodEnum": "classifier.vocabulary.METHOD_CHOICES",
        "SexEnum": "classifier.vocabulary.SEX_CHOICES",
        "SiteEnum": "classifier.vocabulary.SITE_CHOICES",
        "SideEnum": "classifier.vocabulary.Side",
        "SkinTypeEnum": "classifier.vocabulary.SkinType",
        "LesionStatusEnum": "classifier.patients.Lesion.Status",
        "MapViewEnum": "classifier.patients.Lesion.View",
        "AuditActionEnum": "classifier.audit.Action",
        "WebhookEventEnum": "classifier.webhooks.Event",
        "WebhookDeliveryStateEnum": "classifier.webhooks.WebhookDelivery.State",
    },
}

# LOG_FORMAT=json: one JSON object per line, with prediction_id / task_id / job_id fields.
LOG_FORMAT = envstr("LOG_FORMAT", "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "lesionsite.logformat.JsonFormatter"},
    },
    "filters": {"no_query_strings": {"()": "lesionsite.logformat.StripQueryStrings"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            # Every line through it, whichever logger: a request line never carries a search's text.
            "filters": ["no_query_strings"],
        }
    },
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    # runserver's request lines, through the same handler (Django's own would print the query string).
    "loggers": {"django.server": {"handlers": ["console"], "level": "INFO", "propagate": False}},
}

# --- Production hardening: HTTPS, HSTS, Secure cookies, /healthz details, response headers.
# Each is on unless DEBUG is (`make run` serves plain http on 127.0.0.1:8000), and each can
# be set on its own. TLS itself ends at a proxy in front (README: "Running behind TLS").
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", not DEBUG)
# /healthz is exempt: a container's own health check calls it over plain http on loopback.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# A year, the value the HSTS preload list asks for; set 0 while trying TLS for the first time.
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", not DEBUG)
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", not DEBUG)
# Behind a TLS proxy Django sees plain http; the proxy's X-Forwarded-Proto says what the client
# used. Off by default: without a proxy that always sets (or strips) it, a client could send it.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if envbool("TRUST_X_FORWARDED_PROTO", False) else None
# /healthz answers anyone with a bare {"status": ...}; the parts (worker host names, the active
# model) only to staff and to callers from these addresses or CIDR ranges (a monitoring network).
HEALTHZ_DETAIL_FROM = envnetworks("HEALTHZ_DETAIL_FROM", [])
# An anonymous answer is reused this long: each fresh one costs a Celery broadcast (~1 s), which
# an anonymous caller must not be able to repeat at will.
HEALTHZ_CACHE_SECONDS = envint("HEALTHZ_CACHE_SECONDS", 5, minimum=0)
# Every answer Django makes gets `Cache-Control: private, no-store` (a view may say otherwise) and
# this Content-Security-Policy. Inside WhiteNoise, so static files keep their long caching.
_AFTER_WHITENOISE = MIDDLEWARE.index("whitenoise.middleware.WhiteNoiseMiddleware") + 1
MIDDLEWARE.insert(_AFTER_WHITENOISE, "classifier.middleware.PrivateResponsesMiddleware")
# A view that reads a picture while the object store is unreachable answers 503, not 500.
MIDDLEWARE.append("classifier.object_storage.StorageOutageMiddleware")
# Scripts and styles are files of this site; heatmaps and previews are drawn into data: and
# blob: URLs. style-src needs 'unsafe-inline' for style attributes: the image viewers' aspect
# ratio and the probability bars (templates/classifier/prediction.html, _compare.html) and
# templates/admin set them; no template has a <style> element or an inline script.
CONTENT_SECURITY_POLICY = envstr(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)
