"""Driftwatch settings. Every knob comes from the environment through dashboard.env; the defaults
reach the local services that `scripts/services up` starts, so `manage.py` works with nothing set."""

from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from dashboard.env import (
    env_bool,
    env_database,
    env_int,
    env_list,
    env_redis_url,
    env_str,
    env_time_zone,
    env_urlconf,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
# The fallback key is only good for a laptop with DEBUG=true; anywhere else it would sign sessions with a key
# published in this file, so Driftwatch refuses to start (the demo and the tests bring their own key).
DEVELOPMENT_SECRET_KEY = "django-insecure-driftwatch-local-development-key-not-for-production"
SECRET_KEY = env_str("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
if SECRET_KEY == DEVELOPMENT_SECRET_KEY and not DEBUG:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set (or is the published development key) and DEBUG is false: set SECRET_KEY to a "
        "long random value, e.g. the output of: python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
    )
# Values (ConfigMap and Secret data) are hashed with this key (drift.hashing); empty: derived from SECRET_KEY.
# Previous keys (comma-separated) let a rotation recognise unchanged content instead of seeing it all change.
DRIFTWATCH_HASH_KEY = env_str("DRIFTWATCH_HASH_KEY", "")
DRIFTWATCH_HASH_KEYS_PREVIOUS = env_list("DRIFTWATCH_HASH_KEYS_PREVIOUS", [])
# Source versions older than this are pruned (drift.tasks.prune_versions), except each source's latest and
# any a running container may still consume; the audit log is never pruned.
DRIFTWATCH_VERSION_RETENTION_DAYS = env_int("DRIFTWATCH_VERSION_RETENTION_DAYS", 90, minimum=1)
# The largest audit-event batch the webhook accepts (kube-apiserver sends at most 400 events per batch by default,
# about 1.5 KB each at Metadata level).
DRIFTWATCH_AUDIT_MAX_BYTES = env_int("DRIFTWATCH_AUDIT_MAX_BYTES", 4 * 1024 * 1024, minimum=1024)
# /metrics answers only a request carrying this bearer token; empty: it is open (pair it with a NetworkPolicy).
DRIFTWATCH_METRICS_TOKEN = env_str("DRIFTWATCH_METRICS_TOKEN", "")
# Links in notices point here (the address people open Driftwatch at).
DRIFTWATCH_BASE_URL = env_str("DRIFTWATCH_BASE_URL", "http://localhost:8000")
# A failed notice is tried again after this many seconds, then twice as long..., four times, then marked failed.
DRIFTWATCH_NOTIFY_BACKOFF_SECONDS = env_int("DRIFTWATCH_NOTIFY_BACKOFF_SECONDS", 30, minimum=1)
# E-mail channels send through Django's mail settings.
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "driftwatch@localhost")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "axes",
    "drift",
    "dashboard",
]

MIDDLEWARE = [
    # Kubernetes probes call by pod address over plain HTTP: answered before host checks and redirects.
    "dashboard.views.health.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # After CSRF (its process_view runs later), so a forged POST is recorded as such before its size is judged.
    "dashboard.middleware.BoundedInputMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]
# A failed CSRF check is audited, and its 403 page says so.
CSRF_FAILURE_VIEW = "dashboard.views.errors.csrf_failure"

# all (default), dashboard (all but the audit receiver) or audit (the receiver and the probes): the Helm chart runs
# the audit receiver apart from the web pods, on its own Service and port.
ROOT_URLCONF = env_urlconf("DRIFTWATCH_URLS")
WSGI_APPLICATION = "dashboard.wsgi.application"

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
            ],
        },
    },
]

DATABASES = {
    "default": env_database("DATABASE_URL", "postgres://driftwatch:driftwatch@127.0.0.1:5432/driftwatch"),
}
# A persistent connection is checked before reuse, so the first request after a PostgreSQL restart works.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "dashboard.auth.LoginThrottleBackend",
    # Local passwords (break-glass when single sign-on is on); DRIFTWATCH_PASSWORD_LOGIN=false switches them off.
    "dashboard.auth.PasswordBackend",
    # OpenID Connect; does nothing unless DRIFTWATCH_OIDC_ISSUER is set.
    "dashboard.sso.DriftwatchOIDCBackend",
]
# Login throttling (django-axes): a user name from one address is locked out after this many failures in a row.
AXES_FAILURE_LIMIT = env_int("DRIFTWATCH_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("DRIFTWATCH_LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
# The pair, not the address alone: people behind one proxy do not lock each other out.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

# Single sign-on with OpenID Connect (dashboard.sso, mozilla-django-oidc's OIDC_* settings): on when
# DRIFTWATCH_OIDC_ISSUER is set. The endpoints are those of the issuer's /.well-known/openid-configuration.
DRIFTWATCH_OIDC_ISSUER = env_str("DRIFTWATCH_OIDC_ISSUER", "")
SSO_ENABLED = bool(DRIFTWATCH_OIDC_ISSUER)
OIDC_RP_CLIENT_ID = env_str("DRIFTWATCH_OIDC_CLIENT_ID", "")
OIDC_RP_CLIENT_SECRET = env_str("DRIFTWATCH_OIDC_CLIENT_SECRET", "")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("DRIFTWATCH_OIDC_AUTHORIZATION_ENDPOINT", "")
OIDC_OP_TOKEN_ENDPOINT = env_str("DRIFTWATCH_OIDC_TOKEN_ENDPOINT", "")
OIDC_OP_JWKS_ENDPOINT = env_str("DRIFTWATCH_OIDC_JWKS_ENDPOINT", "")
# Unused (the claims come from the verified ID token), but read by the library.
OIDC_OP_USER_ENDPOINT = ""
OIDC_RP_SIGN_ALGO = env_str("DRIFTWATCH_OIDC_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env_str("DRIFTWATCH_OIDC_SCOPES", "openid email profile groups")
OIDC_USE_PKCE = True
OIDC_TIMEOUT = 10
OIDC_AUTHENTICATION_CALLBACK_URL = "sso-callback"
# The claim listing the user's groups, and what each group grants (dashboard.sso.parse_group_roles), e.g.
# {"platform-leads": {"role": "operator", "scopes": ["local/demo"]}, "developers": {"role": "viewer"}}.
DRIFTWATCH_OIDC_GROUPS_CLAIM = env_str("DRIFTWATCH_OIDC_GROUPS_CLAIM", "groups")
DRIFTWATCH_OIDC_GROUP_ROLES = env_str("DRIFTWATCH_OIDC_GROUP_ROLES", "")
if SSO_ENABLED:
    _missing = [
        name
        for name, value in [
            ("DRIFTWATCH_OIDC_CLIENT_ID", OIDC_RP_CLIENT_ID),
            ("DRIFTWATCH_OIDC_CLIENT_SECRET", OIDC_RP_CLIENT_SECRET),
            ("DRIFTWATCH_OIDC_AUTHORIZATION_ENDPOINT", OIDC_OP_AUTHORIZATION_ENDPOINT),
            ("DRIFTWATCH_OIDC_TOKEN_ENDPOINT", OIDC_OP_TOKEN_ENDPOINT),
            ("DRIFTWATCH_OIDC_JWKS_ENDPOINT", OIDC_OP_JWKS_ENDPOINT),
            ("DRIFTWATCH_OIDC_GROUP_ROLES", DRIFTWATCH_OIDC_GROUP_ROLES),
        ]
        if not value
    ]
    if _missing:
        raise ImproperlyConfigured(f"DRIFTWATCH_OIDC_ISSUER is set, so single sign-on needs {', '.join(_missing)}")
# Local password logins; off, only single sign-on lets anyone in (so it needs DRIFTWATCH_OIDC_ISSUER).
DRIFTWATCH_PASSWORD_LOGIN = env_bool("DRIFTWATCH_PASSWORD_LOGIN", True)
if not DRIFTWATCH_PASSWORD_LOGIN and not SSO_ENABLED:
    raise ImproperlyConfigured(
        "DRIFTWATCH_PASSWORD_LOGIN is false and single sign-on is not configured (DRIFTWATCH_OIDC_ISSUER): "
        "nobody could log in"
    )
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "overview"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_time_zone("TIME_ZONE", "UTC")
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve straight from the source folders so the demo needs no collectstatic step.
WHITENOISE_USE_FINDERS = True

# Behind HTTPS in production; the local demo speaks plain HTTP on loopback.
HTTPS = env_bool("HTTPS", not DEBUG)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
# Prometheus scrapes pods over plain HTTP inside the cluster: /metrics answers there instead of redirecting.
SECURE_REDIRECT_EXEMPT = [r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_PROXY", False) else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

REDIS_URL = env_redis_url("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Nothing reads task results, and a result is one more place a value could leak to: none are stored.
CELERY_TASK_IGNORE_RESULT = True
# A task that outlives these is stopped: the soft limit raises inside it (a snapshot then records its run as
# failed), the hard limit kills the worker child. Snapshot tasks set their own, tighter limits (drift.tasks).
CELERY_TASK_SOFT_TIME_LIMIT = env_int("DRIFTWATCH_TASK_SOFT_TIME_LIMIT", 540, minimum=1)
CELERY_TASK_TIME_LIMIT = env_int("DRIFTWATCH_TASK_TIME_LIMIT", 600, minimum=2)
# Installations (and test sessions) sharing one Redis keep their tasks apart with their own queue name: a task
# a worker enqueues itself (a completed rollout asks for a snapshot) must reach a worker of the same database.
CELERY_TASK_DEFAULT_QUEUE = env_str("DRIFTWATCH_CELERY_QUEUE", "celery")
# Beat only ticks; which cluster is due is decided from each cluster's own interval in the database.
CELERY_BEAT_SCHEDULE = {
    "enqueue-due-snapshots": {
        "task": "drift.tasks.enqueue_due_snapshots",
        "schedule": float(env_int("DRIFTWATCH_BEAT_TICK_SECONDS", 5, minimum=1)),
        "options": {"expires": float(env_int("DRIFTWATCH_BEAT_TICK_SECONDS", 5, minimum=1))},
    },
    # Rollouts are also followed by the page that shows them; this keeps them moving when nobody looks.
    "track-rollouts": {
        "task": "drift.tasks.track_rollouts",
        "schedule": float(env_int("DRIFTWATCH_BEAT_TICK_SECONDS", 5, minimum=1)),
        "options": {"expires": float(env_int("DRIFTWATCH_BEAT_TICK_SECONDS", 5, minimum=1))},
    },
    "prune-versions": {"task": "drift.tasks.prune_versions", "schedule": 3600.0, "options": {"expires": 3600.0}},
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
