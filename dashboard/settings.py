"""Driftwatch settings. Every knob comes from the environment through dashboard.env; the defaults
reach the local services that `scripts/services up` starts, so `manage.py` works with nothing set."""

from datetime import timedelta
from pathlib import Path

from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from dashboard.env import (
    env_bool,
    env_database,
    env_int,
    env_list,
    env_networks,
    env_redis_url,
    env_secret_key,
    env_str,
    env_time_zone,
    env_urlconf,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("DEBUG", False)
# The fallback key is only good for a laptop with DEBUG=true; anywhere else it would sign sessions with a key
# published in this file, so Driftwatch refuses to start (the demo and the tests bring their own key).
DEVELOPMENT_SECRET_KEY = "django-insecure-driftwatch-local-development-key-not-for-production"
# Unset, the key is the one `make demo` made and keeps in this checkout (scripts/demo reads the same file).
DEMO_SECRET_KEY_FILE = Path(env_str("DRIFTWATCH_DEMO_KEY_FILE", str(BASE_DIR / ".demo-secret-key")))
SECRET_KEY = env_secret_key("SECRET_KEY", DEMO_SECRET_KEY_FILE, DEVELOPMENT_SECRET_KEY)
if SECRET_KEY == DEVELOPMENT_SECRET_KEY and not DEBUG:
    raise ImproperlyConfigured(
        "SECRET_KEY is not set (or is the published development key) and DEBUG is false: set SECRET_KEY to a "
        "long random value, e.g. the output of: python3 -c 'import secrets; print(secrets.token_urlsafe(50))' "
        f"(in a checkout, `make demo` keeps one in {DEMO_SECRET_KEY_FILE.name}, read when SECRET_KEY is unset)"
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
# Stored API-server audit events (not joined to a version still kept) and the counters of refusals are pruned
# after this many days (drift.tasks.prune_audit_events); the audit log itself is never pruned.
DRIFTWATCH_AUDIT_EVENT_RETENTION_DAYS = env_int(
    "DRIFTWATCH_AUDIT_EVENT_RETENTION_DAYS", DRIFTWATCH_VERSION_RETENTION_DAYS, minimum=1
)
# Refusals anyone can cause at will are counted per hour (RefusedAttempt); only this many of each kind an hour
# also get an audit entry of their own: anonymous ones (CSRF failures, single sign-on callback errors, failed
# logins under unknown names), and a cluster identity's refused writes (403, 409, 422).
DRIFTWATCH_REFUSAL_ENTRIES_PER_HOUR = env_int("DRIFTWATCH_REFUSAL_ENTRIES_PER_HOUR", 20, minimum=0)
DRIFTWATCH_ATTEMPT_ENTRIES_PER_HOUR = env_int("DRIFTWATCH_ATTEMPT_ENTRIES_PER_HOUR", 60, minimum=0)
# /metrics answers only a request carrying this bearer token; empty: it is open (pair it with a NetworkPolicy).
DRIFTWATCH_METRICS_TOKEN = env_str("DRIFTWATCH_METRICS_TOKEN", "")
# Links in notices point here (the address people open Driftwatch at).
DRIFTWATCH_BASE_URL = env_str("DRIFTWATCH_BASE_URL", "http://localhost:8000")
# A failed notice is tried again after this many seconds, then twice as long..., four times, then marked failed.
DRIFTWATCH_NOTIFY_BACKOFF_SECONDS = env_int("DRIFTWATCH_NOTIFY_BACKOFF_SECONDS", 30, minimum=1)
# Webhooks never reach loopback, link-local (cloud metadata), private or other non-public addresses
# (drift.notify.outbound) unless their range is allowed here, e.g. an in-house receiver's 10.20.0.0/16; the denied
# ranges are refused even when allowed: the cluster's Service and pod ranges, when they are not private ones.
DRIFTWATCH_NOTIFY_ALLOWED_NETWORKS = env_networks("DRIFTWATCH_NOTIFY_ALLOWED_NETWORKS", [])
DRIFTWATCH_NOTIFY_DENIED_NETWORKS = env_networks("DRIFTWATCH_NOTIFY_DENIED_NETWORKS", [])
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
    "csp",
    "drift",
    "dashboard",
]

MIDDLEWARE = [
    # Kubernetes probes call by pod address over plain HTTP: answered before host checks and redirects.
    "dashboard.views.health.ProbeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Every page, error pages included (static files need none).
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Before any process_view (the CSRF check's reads the body): refuses anonymous or over-large multipart bodies.
    "dashboard.middleware.MultipartGuardMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Ends or renews a single sign-on session whose ID token's time is up, before any view (or the login check).
    "dashboard.middleware.SsoSessionMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # After CSRF (its process_view runs later), so a forged POST is recorded as such before its size is judged.
    "dashboard.middleware.BoundedInputMiddleware",
    # Last, as django-axes asks: turns a locked-out login into the lockout page.
    "axes.middleware.AxesMiddleware",
]
# Nothing Driftwatch accepts is larger than this (the audit webhook reads its stream, bounded by
# DRIFTWATCH_AUDIT_MAX_BYTES). A file part is kept in memory, never in a temporary file: a multipart body larger
# than this is refused before it is read (dashboard.middleware.MultipartGuardMiddleware).
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE
FILE_UPLOAD_HANDLERS = ["django.core.files.uploadhandler.MemoryFileUploadHandler"]
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
# Login throttling (dashboard.auth, on django-axes): failures are counted per client address and per account name.
# An address that fails DRIFTWATCH_LOGIN_ADDRESS_FAILURE_LIMIT times (whatever names it tries) is blocked for the
# lockout minutes; an account name that fails DRIFTWATCH_LOGIN_FAILURE_LIMIT times (from wherever) only pauses for
# DRIFTWATCH_LOGIN_PAUSE_SECONDS, never lengthened by the attempts it refuses: a flood from many addresses can slow
# the break-glass admin down, never keep it out.
DRIFTWATCH_LOGIN_FAILURE_LIMIT = env_int("DRIFTWATCH_LOGIN_FAILURE_LIMIT", 5, minimum=1)
DRIFTWATCH_LOGIN_PAUSE_SECONDS = env_int("DRIFTWATCH_LOGIN_PAUSE_SECONDS", 60, minimum=1)
AXES_FAILURE_LIMIT = env_int("DRIFTWATCH_LOGIN_ADDRESS_FAILURE_LIMIT", 20, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("DRIFTWATCH_LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
# A refused attempt is not counted: a lock ends its time after the failure that set it, however much is tried.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# One row per counted failure, which the per-account count reads (axes keeps the latest 1,000 per name).
AXES_ENABLE_ACCESS_FAILURE_LOG = True
# A success does not wipe its address's failures: whoever knows one password could otherwise log in between
# guesses at other names and never be blocked. (A name's pause counts from its own last success.)
AXES_RESET_ON_SUCCESS = False
AXES_CLIENT_IP_CALLABLE = "dashboard.auth.client_address"
AXES_LOCKOUT_CALLABLE = "dashboard.auth.lockout_response"
AXES_VERBOSE = False
# How many reverse proxies of our own stand in front (each appends the address it was called from to
# X-Forwarded-For). 0: the client is the socket's peer and X-Forwarded-For is ignored; N: the N-th address from the
# end, the one our outermost proxy added. Anything a client writes ahead of it is never read.
DRIFTWATCH_TRUSTED_PROXIES = env_int("DRIFTWATCH_TRUSTED_PROXIES", 0)

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
# offline_access: a refresh token, with which a session is renewed (and its groups read again) without a login.
OIDC_RP_SCOPES = env_str("DRIFTWATCH_OIDC_SCOPES", "openid email profile groups offline_access")
OIDC_USE_PKCE = True
OIDC_TIMEOUT = 10
OIDC_AUTHENTICATION_CALLBACK_URL = "sso-callback"
# The claim listing the user's groups, and what each group grants (dashboard.sso.parse_group_roles), e.g.
# {"platform-leads": {"role": "operator", "scopes": ["local/demo"]}, "developers": {"role": "viewer"}}.
DRIFTWATCH_OIDC_GROUPS_CLAIM = env_str("DRIFTWATCH_OIDC_GROUPS_CLAIM", "groups")
DRIFTWATCH_OIDC_GROUP_ROLES = env_str("DRIFTWATCH_OIDC_GROUP_ROLES", "")
# A single sign-on session is trusted until its ID token expires or for this long, whichever is sooner; then it is
# renewed with the refresh token (its groups applied again) or, without one, it ends (dashboard.middleware).
DRIFTWATCH_OIDC_SESSION_SECONDS = env_int("DRIFTWATCH_OIDC_SESSION_SECONDS", 3600, minimum=1)
# How far this server's clock and the provider's may disagree when an ID token's times (iat, exp) are checked.
DRIFTWATCH_OIDC_CLOCK_SKEW_SECONDS = env_int("DRIFTWATCH_OIDC_CLOCK_SKEW_SECONDS", 30)
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
# Scripts and styles come from our static files only: no inline script or style, no eval (htmx is configured
# without it, templates/base.html), no plugin, no framing, forms posting only here (and to the single sign-on
# provider, whose logout or login a form may lead to).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
        "form-action": [SELF, *([DRIFTWATCH_OIDC_ISSUER.rstrip("/")] if DRIFTWATCH_OIDC_ISSUER else [])],
    }
}

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
    "prune-audit-events": {
        "task": "drift.tasks.prune_audit_events",
        "schedule": 3600.0,
        "options": {"expires": 3600.0},
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
}
