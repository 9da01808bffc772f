"""Django settings for jailadmin, read from JAILADMIN_* environment variables.

Every variable is listed with its default in README.md. A bad value raises
ImproperlyConfigured at startup rather than misbehaving later.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from jailadmin.email_url import email_settings
from jailadmin.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_str,
    env_url_prefix,
    host_time_zone,
)
from jails.agent.link import agent_address_check
from jails.fail2ban import InvalidArgument

BASE_DIR = Path(__file__).resolve().parent.parent
# An installed wheel carries the site's templates/ and static/ inside the package (setup.py);
# a checkout (`make run`, the editable install, the tests) has them beside the packages.
_PACKAGED_SITE = Path(__file__).resolve().parent / "site"
SITE_FILES_DIR = _PACKAGED_SITE if _PACKAGED_SITE.is_dir() else BASE_DIR
if "JAILADMIN_VAR_DIR" not in os.environ and SITE_FILES_DIR == _PACKAGED_SITE:
    # The checkout's var/ would be inside site-packages: an installed site says where.
    raise ImproperlyConfigured("JAILADMIN_VAR_DIR must be set for an installed jailadmin")
VAR_DIR = Path(env_str("JAILADMIN_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("JAILADMIN_DEBUG", False)
_DEV_SECRET = "insecure-development-key-only-for-debug-and-tests"
SECRET_KEY = env_str("JAILADMIN_SECRET_KEY", _DEV_SECRET if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "JAILADMIN_SECRET_KEY must be set (or JAILADMIN_DEBUG=true for development)"
    )
ALLOWED_HOSTS = env_list("JAILADMIN_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("JAILADMIN_CSRF_TRUSTED_ORIGINS", [])
# Reverse proxies whose X-Forwarded-For is believed (addresses or networks).
JAILADMIN_TRUSTED_PROXIES = env_networks("JAILADMIN_TRUSTED_PROXIES", [])
# Served under a sub-path behind a reverse proxy (`/fail2ban`): Django puts it in front of
# every reverse()d URL, redirect and static URL (FORCE_SCRIPT_NAME), jailadmin.wsgi takes it
# off the path the proxy passes on, and the cookies are scoped to it. "" serves at /.
JAILADMIN_URL_PREFIX = env_url_prefix("JAILADMIN_URL_PREFIX")
FORCE_SCRIPT_NAME = JAILADMIN_URL_PREFIX or None

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
    "jails.apps.JailsConfig",
    # Domain apps nested in jails/ (README, "How it is built").
    "jails.history.apps.HistoryConfig",
    "jails.blocklists.apps.BlocklistsConfig",
    "jails.metrics.apps.MetricsConfig",
    "jails.configuration.apps.ConfigurationConfig",
    "jails.notifications.apps.NotificationsConfig",
    "jails.hosts.apps.HostsConfig",
]

MIDDLEWARE = [
    # Outermost: counts and times every request by its view (jails.metrics; off with /metrics).
    "jails.metrics.middleware.RequestMetricsMiddleware",
    # First: everything after it (audit, lockout, own-address check) sees the real client.
    "jails.middleware.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "jails.middleware.ContentSecurityPolicyMiddleware",
    # An HTMX request redirected to the login page or the wizard reloads the whole page.
    "jails.middleware.HtmxAuthRedirectMiddleware",
    # Until the first-run setup is done every page except /setup/ and /healthz redirects
    # there; it runs before sessions, so the wizard never needs the session storage.
    "jails.middleware.SetupRequiredMiddleware",
    # Django's SessionMiddleware, with an unreachable session storage as a 503 page.
    "jails.sessions.SessionMiddleware",
    # The language from the cookie or Accept-Language, else JAILADMIN_LANGUAGE; it sets
    # Content-Language and Vary on the way out. Before CommonMiddleware, as Django asks.
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The user's own choice, copied into the session at login: beats the browser's.
    "jails.language.UserLanguageMiddleware",
    # Needs the user; reads the bulk-ban form's large body before CSRF parses the POST.
    "jails.middleware.LargeListBodyMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "jails.middleware.DisplayTimeZoneMiddleware",
    "jails.middleware.Fail2banErrorMiddleware",
    # Last, as django-axes asks: turns a lockout into the "locked out" page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "jailadmin.urls"
WSGI_APPLICATION = "jailadmin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [SITE_FILES_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                # LANGUAGES, LANGUAGE_CODE, LANGUAGE_BIDI: <html lang dir> and the selector.
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "jails.context_processors.status_bar",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("JAILADMIN_DATABASE_URL", f"sqlite:///{VAR_DIR / 'jailadmin.sqlite3'}"),
        conn_max_age=60,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several gunicorn workers and the job runner share the file: wait for locks, use WAL.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# django-axes first: it refuses a locked-out username or address before any password check.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# URL names, not paths: resolved per request, so they carry JAILADMIN_URL_PREFIX.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "jails:dashboard"
LOGOUT_REDIRECT_URL = "login"

# Each language under its own name: someone who cannot read the page finds theirs.
LANGUAGES = [
    ("en", "English"),
    ("de", "Deutsch"),
    ("fr", "Français"),
    ("es", "Español"),
    ("pt-br", "Português (Brasil)"),
    ("it", "Italiano"),
    ("ru", "Русский"),
    ("zh-hans", "简体中文"),
    ("ja", "日本語"),
]
# The site's own language: commands, notifications, and browsers that ask for none of ours.
# A user's choice (jails.language.UserLanguageMiddleware) and Accept-Language come first.
LANGUAGE_CODE = env_choice("JAILADMIN_LANGUAGE", "en", tuple(code for code, _name in LANGUAGES))
# Inside the package, so a wheel ships the compiled catalogues (`make messages` writes them).
LOCALE_PATHS = [Path(__file__).resolve().parent / "locale"]
TIME_ZONE = env_str("JAILADMIN_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

# With the prefix spelled out: Django would prefix a relative STATIC_URL with the script
# prefix of whichever thread reads it first and keep that (a gunicorn worker's is "/" then).
# WhiteNoise serves it at /static/ below the prefix (it takes FORCE_SCRIPT_NAME off).
STATIC_URL = f"{JAILADMIN_URL_PREFIX}/static/"
STATICFILES_DIRS = [SITE_FILES_DIR / "static"]
STATIC_ROOT = Path(env_str("JAILADMIN_STATIC_ROOT", str(VAR_DIR / "static")))
# WhiteNoise serves the (vendored) static files from gunicorn itself, with far-future
# cache headers on hashed names: no separate web server is needed for a small admin site.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
# Before `collectstatic` has run (tests, first start) fall back to the unhashed names.
WHITENOISE_MANIFEST_STRICT = False

# Sessions live in the cache backend held in the runtime state (jails/sessions.py), chosen
# from the runtime settings at startup and swapped when /settings/ changes it.
SESSION_ENGINE = "jails.sessions"
# Request bodies keep Django's limit (DATA_UPLOAD_MAX_MEMORY_SIZE, 2.5 MB), the anonymous
# /login/ included. Only the bulk-ban form, for users who may ban, takes up to this much
# (jails.middleware.LargeListBodyMiddleware): a pasted list of up to 100 000 addresses
# (IPv6 with prefixes: about 4.4 MB), and its confirmation step posts the held-back ones.
JAILADMIN_LARGE_LIST_MAX_BYTES = 16 * 1024 * 1024

# Under a sub-path the cookies stay there: another site on the same host name sees none.
SESSION_COOKIE_PATH = CSRF_COOKIE_PATH = LANGUAGE_COOKIE_PATH = f"{JAILADMIN_URL_PREFIX}/"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE = env_bool("JAILADMIN_SECURE", False)
SESSION_COOKIE_SECURE = SECURE
CSRF_COOKIE_SECURE = SECURE
# No script needs to read the CSRF cookie: pages hand the token to HTMX in `hx-headers` on
# <body> and to forms in {% csrf_token %}, so a script injected somehow cannot lift it.
CSRF_COOKIE_HTTPONLY = True
CSRF_COOKIE_SAMESITE = "Lax"
# The language selector's cookie (jails.views.language): kept a year, so the login page is
# in the user's language after logging out; only the server reads it.
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
LANGUAGE_COOKIE_SECURE = SECURE
LANGUAGE_COOKIE_HTTPONLY = True
LANGUAGE_COOKIE_SAMESITE = "Lax"
SECURE_SSL_REDIRECT = SECURE
# The health check answers over plain HTTP too: a monitor or the README's `curl` asks
# gunicorn directly on the loopback, behind the TLS proxy (no cookies, no page, no details).
# SecurityMiddleware matches the path with JAILADMIN_URL_PREFIX, less its leading slash.
SECURE_REDIRECT_EXEMPT = [rf"^{re.escape((JAILADMIN_URL_PREFIX + '/healthz').lstrip('/'))}$"]
SECURE_HSTS_SECONDS = 31536000 if SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE
SECURE_HSTS_PRELOAD = SECURE
# Not SECURE_PROXY_SSL_HEADER: Django would believe X-Forwarded-Proto from any client.
# jails.middleware.TrustedProxyMiddleware takes it from JAILADMIN_TRUSTED_PROXIES only.
SECURE_PROXY_SSL_HEADER = None
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("JAILADMIN_LOG_LEVEL", "INFO")},
}

# --- jailadmin's own settings (seed values for the runtime settings) ---------------------------
JAILADMIN_FAIL2BAN_SOCKET = env_str("JAILADMIN_FAIL2BAN_SOCKET", "/var/run/fail2ban/fail2ban.sock")
JAILADMIN_FAIL2BAN_TIMEOUT = env_float("JAILADMIN_FAIL2BAN_TIMEOUT", 5.0, minimum=0.1)
# Pages that ask several hosts (jails.hosts) wait this long for each before showing it as
# unreachable and rendering the rest.
JAILADMIN_HOST_DEADLINE = env_float("JAILADMIN_HOST_DEADLINE", 4.0, minimum=0.1)
# A host that failed or missed that deadline is shown unreachable at once, without being
# asked, for this many seconds; then the next page asks it again (0: always ask).
JAILADMIN_HOST_RETRY = env_float("JAILADMIN_HOST_RETRY", 30.0, minimum=0.0)
# fail2ban reports ban times in the server's local time, without a zone.
JAILADMIN_FAIL2BAN_TIME_ZONE = env_str("JAILADMIN_FAIL2BAN_TIME_ZONE", host_time_zone())
# Configuration directory and fail2ban-client for `reload` (the one subprocess we run).
JAILADMIN_FAIL2BAN_CONFIG_DIR = env_str("JAILADMIN_FAIL2BAN_CONFIG_DIR", "/etc/fail2ban")
JAILADMIN_FAIL2BAN_CLIENT = env_str("JAILADMIN_FAIL2BAN_CLIENT", "fail2ban-client")
# "" talks to fail2ban's socket directly; "unix:/run/jailadmin/agent.sock" through the host
# agent, so the site itself needs no access to fail2ban (README, "Privilege separation").
try:
    JAILADMIN_FAIL2BAN_AGENT = agent_address_check(env_str("JAILADMIN_FAIL2BAN_AGENT", ""))
except InvalidArgument as exc:
    raise ImproperlyConfigured(f"JAILADMIN_FAIL2BAN_AGENT: {exc}") from None
JAILADMIN_SESSION_CACHE = env_choice(
    "JAILADMIN_SESSION_CACHE", "database", ("database", "redis", "memory")
)
JAILADMIN_REDIS_URL = env_str("JAILADMIN_REDIS_URL", "")
JAILADMIN_GEOIP_DB = env_str("JAILADMIN_GEOIP_DB", "")
JAILADMIN_PAGE_SIZE = env_int("JAILADMIN_PAGE_SIZE", 50, minimum=5)
JAILADMIN_POLL_SECONDS = env_int("JAILADMIN_POLL_SECONDS", 10, minimum=2)
# Banning a network with a shorter prefix than this asks for a confirmation first (the
# pages' confirmation step, `manage.py jails ban --yes`): a /8 can lock out a whole
# provider, the operators' own network among them. /0 is refused whatever these say.
JAILADMIN_BAN_MIN_PREFIX_V4 = env_int("JAILADMIN_BAN_MIN_PREFIX_V4", 16, minimum=1, maximum=32)
JAILADMIN_BAN_MIN_PREFIX_V6 = env_int("JAILADMIN_BAN_MIN_PREFIX_V6", 48, minimum=1, maximum=128)
# Seeds of the first-run setup (the wizard saves the runtime values in the database).
JAILADMIN_SESSION_LIFETIME = env_int("JAILADMIN_SESSION_LIFETIME", 8 * 3600, minimum=300)
JAILADMIN_HISTORY_RETENTION_DAYS = env_int("JAILADMIN_HISTORY_RETENTION_DAYS", 365, minimum=1)
# How many gunicorn workers serve the site (scripts/run.sh starts exactly this many):
# process-local `memory` sessions are refused with more than one (system check jails.E010).
JAILADMIN_WORKERS = env_int("JAILADMIN_WORKERS", 3, minimum=1)
# The job runner (`run_jobs`) lowers its CPU priority to this niceness: its bursts (history
# sync, a 10 000-ban notification evaluation) then wait for the web workers' pages.
JAILADMIN_JOBS_NICE = env_int("JAILADMIN_JOBS_NICE", 10, minimum=0, maximum=19)

# Notifications (jails.notifications; README, "Notifications"): the SMTP server as one URL
# (jailadmin.email_url; unset: email channels report "not configured"), the sender, the base
# URL for links in messages, and delivery's timeout, attempts and first retry delay.
_EMAIL = email_settings("JAILADMIN_EMAIL_URL", env_str("JAILADMIN_EMAIL_URL", ""))
globals().update(_EMAIL)
JAILADMIN_EMAIL_CONFIGURED = bool(_EMAIL)
DEFAULT_FROM_EMAIL = env_str("JAILADMIN_EMAIL_FROM", "jailadmin@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
JAILADMIN_SITE_URL = env_str("JAILADMIN_SITE_URL", "")
JAILADMIN_NOTIFY_TIMEOUT = env_float("JAILADMIN_NOTIFY_TIMEOUT", 10.0, minimum=0.1)
JAILADMIN_NOTIFY_MAX_ATTEMPTS = env_int("JAILADMIN_NOTIFY_MAX_ATTEMPTS", 5, minimum=1)
JAILADMIN_NOTIFY_BACKOFF_SECONDS = env_int("JAILADMIN_NOTIFY_BACKOFF_SECONDS", 30, minimum=1)

# /metrics (Prometheus): off (404) unless a bearer token or allowed addresses are set; with
# both, a scrape needs both. The token is compared in constant time; it must be long.
JAILADMIN_METRICS_TOKEN = env_str("JAILADMIN_METRICS_TOKEN", "").strip()
if JAILADMIN_METRICS_TOKEN and len(JAILADMIN_METRICS_TOKEN) < 16:
    raise ImproperlyConfigured("JAILADMIN_METRICS_TOKEN must be at least 16 characters")
JAILADMIN_METRICS_ALLOWED = env_networks("JAILADMIN_METRICS_ALLOWED", [])
# fail2ban's counters are read once per this many seconds, whichever worker is scraped.
JAILADMIN_METRICS_CACHE_SECONDS = env_int("JAILADMIN_METRICS_CACHE_SECONDS", 5, minimum=1)
# prometheus_client's multiprocess mode: each gunicorn worker writes its request counters to
# files here and a scrape sums them. The library reads PROMETHEUS_MULTIPROC_DIR when it is
# first imported, so it is set here, before any app loads; always from this setting (not
# inherited), so a site started by another one (tests, the demo) keeps its own counters.
JAILADMIN_METRICS_DIR = Path(env_str("JAILADMIN_METRICS_DIR", str(VAR_DIR / "metrics")))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(JAILADMIN_METRICS_DIR)

# Brute-force protection (django-axes with jails.lockout's handler): after
# JAILADMIN_LOGIN_FAILURE_LIMIT failed logins for one username from one address, or
# JAILADMIN_LOGIN_ADDRESS_FAILURE_LIMIT from one address for any usernames, that pair or
# address is refused for the cool-off time. Never a username alone: that would let anybody
# lock the administrator out.
AXES_FAILURE_LIMIT = env_int("JAILADMIN_LOGIN_FAILURE_LIMIT", 5, minimum=1)
JAILADMIN_LOGIN_ADDRESS_FAILURE_LIMIT = env_int(
    "JAILADMIN_LOGIN_ADDRESS_FAILURE_LIMIT", 4 * AXES_FAILURE_LIMIT, minimum=AXES_FAILURE_LIMIT
)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("JAILADMIN_LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_HANDLER = "jails.lockout.PairAndAddressHandler"
AXES_RESET_ON_SUCCESS = True  # the handler clears only that username's failures from there
AXES_ENABLE_ACCESS_FAILURE_LOG = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False  # no "AXES: BEGIN" banner on every command and worker start
# The one-time token the first-run setup (/setup/) asks for; created on first need, deleted
# once the setup is complete (`manage.py jailadmin_setup --print-token` prints it).
JAILADMIN_SETUP_TOKEN_FILE = VAR_DIR / "setup-token"

for _name in ("TIME_ZONE", "JAILADMIN_FAIL2BAN_TIME_ZONE"):
    try:
        ZoneInfo(globals()[_name])
    except (ZoneInfoNotFoundError, ValueError):
        raise ImproperlyConfigured(f"{_name} is not a known time zone") from None
