"""Settings shared by every environment. Everything is overridable by environment variables."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

from models_gpu.config import PRECISIONS as EMBEDDING_PRECISIONS

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str = "") -> list[str]:
    return [part.strip() for part in os.environ.get(name, default).split(",") if part.strip()]


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "annotation",
    "curation",
    "frontend",
]

MIDDLEWARE = [
    # First: everything after it sees the real client address (see BALLOT_TRUSTED_PROXIES).
    "annotation.authentication.ClientAddressMiddleware",
    # A NUL in the query string is a 400 naming the parameter, never a database error.
    "annotation.middleware.QueryStringGuardMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Scripts from Ballot's static files only (annotation/middleware.py).
    "annotation.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a sign-in lockout into the 429 answer (annotation.authentication.lockout_response).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
            ],
        },
    },
]

# SQLite is the embedded default; DATABASE_URL switches to PostgreSQL (psycopg 3).
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'var' / 'ballot.sqlite3'}",
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Create the folder of the database file actually used (var/ only for the default file).
    _sqlite_name = str(DATABASES["default"]["NAME"])
    if _sqlite_name and _sqlite_name != ":memory:" and not _sqlite_name.startswith("file:"):
        Path(_sqlite_name).parent.mkdir(parents=True, exist_ok=True)
    # Several threads and the in-process worker share the file: wait instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    # WAL lets readers go on during a write and makes each commit cheap (no full fsync).
    DATABASES["default"]["OPTIONS"]["init_command"] = (
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
    )
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    DATABASES["default"]["CONN_MAX_AGE"] = 0
elif env_bool("DATABASE_PREPARED_STATEMENTS", True):
    # PostgreSQL: parameters travel apart from the SQL (server-side binding) and psycopg
    # prepares a statement once one connection has run it five times, so PostgreSQL plans
    # it once per connection. The hot path's statements took 2-3x longer to plan than to
    # run; prepared, 8 annotators' submissions/s rose by 45% (bench/README.md). A
    # transaction-mode pooler needs prepared-statement support (PgBouncer 1.21+,
    # max_prepared_statements); DATABASE_PREPARED_STATEMENTS=0 turns both off.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        server_side_binding=True, prepare_threshold=5
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # The charting library's browser bundle, from its installed Python package.
    "frontend.vendor.VendorFinder",
]
# The Content-Security-Policy header; empty: annotation.middleware's default (scripts
# from 'self' only, no inline script or eval).
BALLOT_CONTENT_SECURITY_POLICY = os.environ.get("BALLOT_CONTENT_SECURITY_POLICY", "")
STATIC_ROOT = BASE_DIR / "var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# Addresses (or CIDR networks) of the reverse proxies in front of Ballot. Only a
# request whose peer is one of them has its X-Forwarded-For read, from the right;
# with none configured the header is ignored and the peer address is the client.
BALLOT_TRUSTED_PROXIES = env_list("BALLOT_TRUSTED_PROXIES")

# Sign-in lockout (django-axes), shared by /login/, /admin/login/ and /api/v1/auth/token/:
# after BALLOT_LOGIN_FAILURE_LIMIT failures for one username, or from one client
# address, every attempt (even with the right password) is refused with 429 and
# Retry-After until BALLOT_LOGIN_COOLOFF_SECONDS pass without another attempt.
AUTHENTICATION_BACKENDS = [
    "annotation.authentication.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("BALLOT_LOGIN_FAILURE_LIMIT", "10"))
AXES_COOLOFF_TIME = timedelta(seconds=int(os.environ.get("BALLOT_LOGIN_COOLOFF_SECONDS", "900")))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
# A success must not wipe the count: it would also clear the failures another
# account collected from the same address, letting an attacker with one valid
# login reset the counter on the account they are guessing.
AXES_RESET_ON_SUCCESS = False
AXES_CLIENT_IP_CALLABLE = "annotation.authentication.client_ip"
AXES_LOCKOUT_CALLABLE = "annotation.authentication.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429

# A failed CSRF check shows the site's styled 403 page with advice, not Django's bare one.
CSRF_FAILURE_VIEW = "frontend.views.csrf_failure"

LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

# Where jobs write artifacts (embeddings, exports). Local disk by default.
BALLOT_STORAGE_ROOT = Path(os.environ.get("BALLOT_STORAGE_ROOT", BASE_DIR / "var" / "storage"))
BALLOT_EMBEDDING_MODEL = os.environ.get("BALLOT_EMBEDDING_MODEL", "")
# The encoder's precision (models_gpu.EmbeddingConfig.precision): auto takes bfloat16 where
# the GPU or CPU computes it natively, float32 elsewhere; float32 forces the exact vectors.
BALLOT_EMBEDDING_PRECISION = os.environ.get("BALLOT_EMBEDDING_PRECISION", "auto")
if BALLOT_EMBEDDING_PRECISION not in EMBEDDING_PRECISIONS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        f"BALLOT_EMBEDDING_PRECISION must be auto, float32 or bfloat16, "
        f"not {BALLOT_EMBEDDING_PRECISION!r}."
    )
# Folders job parameters may load models from (embedding_model, reward_model_path name a
# folder relative to one of them); API clients never give server paths. Comma-separated.
BALLOT_MODEL_ROOTS = env_list("BALLOT_MODEL_ROOTS")
# LM judges: their stored API keys are Fernet-encrypted with a key derived from this
# (else from SECRET_KEY; changing it makes stored keys unreadable); the first pause
# between retries of a failed judge request (doubling, or the server's Retry-After).
BALLOT_JUDGE_SECRET_KEY = os.environ.get("BALLOT_JUDGE_SECRET_KEY", "")
BALLOT_JUDGE_BACKOFF_SECONDS = float(os.environ.get("BALLOT_JUDGE_BACKOFF_SECONDS", "0.5"))
BALLOT_LEASE_SECONDS = int(os.environ.get("BALLOT_LEASE_SECONDS", str(30 * 60)))
# A running job whose heartbeat is older than this may be claimed again (its worker died).
BALLOT_JOB_STALE_SECONDS = int(os.environ.get("BALLOT_JOB_STALE_SECONDS", "120"))
# Without a broker, run jobs in a background thread so the API answers at once.
BALLOT_JOBS_IN_THREAD = env_bool("BALLOT_JOBS_IN_THREAD", True)
# Cohen's kappa counts an annotator pair from this many shared units on (quality page).
BALLOT_KAPPA_MIN_SHARED_UNITS = int(os.environ.get("BALLOT_KAPPA_MIN_SHARED_UNITS", "5"))
# The explorer counts matches exactly up to this many; above, PostgreSQL's estimate ("about N").
BALLOT_EXPLORER_EXACT_COUNT = int(os.environ.get("BALLOT_EXPLORER_EXACT_COUNT", "10000"))
BALLOT_IMPORT_MAX_BYTES = int(os.environ.get("BALLOT_IMPORT_MAX_BYTES", str(512 * 1024 * 1024)))
# Input limits (annotation/parsers.py): every JSON body, JSON form field and import line
# obeys them; breaking one gets 400 naming the field, a body over its size limit 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = int(os.environ.get("BALLOT_MAX_BODY_BYTES", str(5 * 1024 * 1024)))
BALLOT_IMPORT_MAX_LINE_BYTES = int(os.environ.get("BALLOT_IMPORT_MAX_LINE_BYTES", str(1024 * 1024)))
BALLOT_JSON_MAX_DEPTH = int(os.environ.get("BALLOT_JSON_MAX_DEPTH", "32"))
BALLOT_MAX_TEXT_LENGTH = int(os.environ.get("BALLOT_MAX_TEXT_LENGTH", "100000"))
BALLOT_MAX_RESPONSES_PER_ITEM = int(os.environ.get("BALLOT_MAX_RESPONSES_PER_ITEM", "100"))

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "annotation.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "annotation.schema.BallotAutoSchema",
    "DEFAULT_PAGINATION_CLASS": "annotation.pagination.DefaultCursorPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "annotation.errors.exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["annotation.renderers.TolerantJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "annotation.parsers.StrictJSONParser",
        "rest_framework.parsers.MultiPartParser",
        "annotation.parsers.StrictFormParser",
    ],
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # ?format= names an import/export format in Ballot, not a renderer.
    "URL_FORMAT_OVERRIDE": None,
    "DEFAULT_THROTTLE_RATES": {"anon": os.environ.get("BALLOT_ANON_RATE", "60/min")},
    # Throttles key on REMOTE_ADDR, which ClientAddressMiddleware has already resolved
    # through the trusted proxies; never on the client-supplied X-Forwarded-For.
    "NUM_PROXIES": 0,
}
if env_bool("BALLOT_BROWSABLE_API", False):
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append(
        "rest_framework.renderers.BrowsableAPIRenderer"
    )

SPECTACULAR_SETTINGS = {
    "TITLE": "Ballot API",
    "DESCRIPTION": "Collect human feedback on model outputs and curate it into alignment datasets.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI is served from the installed sidecar package: the docs work offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "AssignmentStatusEnum": "annotation.models.AssignmentStatus",
        "JobStatusEnum": "curation.models.JobStatus",
        "SelectionSourceEnum": "curation.pairs.SOURCES",
    },
}

# Celery: no broker means tasks run in-process (the embedded default).
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", CELERY_BROKER_URL or None)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}

REDIS_URL = os.environ.get("REDIS_URL", "")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "config.cache.PooledRedisCache", "LOCATION": REDIS_URL}}
# API tokens are cached (by hash) for this long, so authenticating costs no query on a warm
# cache; revoking a token or changing its user forgets the entry at once
# (annotation/authentication.py). Only with a cache every web process shares: a
# per-process cache would keep a token revoked in another process working until it expired.
BALLOT_TOKEN_CACHE_SECONDS = int(
    os.environ.get("BALLOT_TOKEN_CACHE_SECONDS", "") or (60 if REDIS_URL else 0)
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("BALLOT_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
