"""Settings come from the environment, and a bad value says how to fix it."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from dashboard import env

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("helper", "value", "message"),
    [
        pytest.param(lambda: env.env_bool("X", False), "maybe", "not a boolean", id="bool"),
        pytest.param(lambda: env.env_int("X", 1), "ten", "not a whole number", id="int"),
        pytest.param(lambda: env.env_int("X", 1, minimum=1), "0", "below its minimum", id="int-minimum"),
        pytest.param(lambda: env.env_database("X", ""), "sqlite:///db.sqlite3", "PostgreSQL only", id="sqlite"),
        pytest.param(lambda: env.env_redis_url("X", ""), "http://localhost", "redis://", id="redis"),
        pytest.param(lambda: env.env_time_zone("X", "UTC"), "Mars/Olympus", "not a known time zone", id="tz"),
    ],
)
def test_a_bad_value_raises_improperly_configured(monkeypatch, helper, value, message):
    monkeypatch.setenv("X", value)
    with pytest.raises(ImproperlyConfigured, match=message):
        helper()


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("TRUE", True), ("off", False), ("", False), (None, True)])
def test_booleans(monkeypatch, raw, expected):
    if raw is None:
        monkeypatch.delenv("X", raising=False)
    else:
        monkeypatch.setenv("X", raw)
    assert env.env_bool("X", True) is expected


def test_lists_and_database_urls(monkeypatch):
    monkeypatch.setenv("X", "a.example, b.example,,")
    assert env.env_list("X", []) == ["a.example", "b.example"]
    monkeypatch.setenv("DB", "postgres://u:p@db.internal:6543/dw")
    database = env.env_database("DB", "")
    assert (database["HOST"], database["PORT"], database["NAME"], database["USER"]) == ("db.internal", 6543, "dw", "u")


def manage(*args, **environment):
    clean = {k: v for k, v in os.environ.items() if k not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "HTTPS"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **environment}, capture_output=True, text=True
    )


def test_check_deploy_is_clean_with_production_settings():
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING",
        DEBUG="false", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="driftwatch.example.com",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_a_bad_setting_stops_manage_py_with_the_fix():
    result = manage("check", DEBUG="perhaps")
    assert result.returncode != 0
    assert "DEBUG='perhaps' is not a boolean" in result.stderr


def test_the_development_secret_key_is_refused_when_debug_is_off():
    refused = manage("check", DJANGO_SETTINGS_MODULE="dashboard.settings")
    assert refused.returncode != 0
    assert "SECRET_KEY is not set" in refused.stderr
    assert "token_urlsafe" in refused.stderr, "the message says how to make one"
    on_a_laptop = manage("check", DJANGO_SETTINGS_MODULE="dashboard.settings", DEBUG="true")
    assert on_a_laptop.returncode == 0, on_a_laptop.stderr


def test_database_connections_are_health_checked(settings):
    """After a PostgreSQL restart a kept connection is checked before use, so the first request works."""
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True


def test_celery_stores_no_results_and_limits_every_task(settings):
    assert settings.CELERY_TASK_IGNORE_RESULT is True
    assert 0 < settings.CELERY_TASK_SOFT_TIME_LIMIT < settings.CELERY_TASK_TIME_LIMIT
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert all("expires" in entry.get("options", {}) for entry in schedule.values()), "beat's tasks expire"


@pytest.mark.django_db(transaction=True)
def test_the_first_query_after_postgresql_dropped_the_connection_works():
    """What a PostgreSQL restart does to a kept connection, done to this one connection only."""
    import psycopg
    from django.contrib.auth import get_user_model
    from django.core.signals import request_started
    from django.db import connection

    get_user_model().objects.create_user("kept")  # committed: the reconnected query must find it
    connection.ensure_connection()
    backend = connection.connection.info.backend_pid
    database = connection.settings_dict
    with psycopg.connect(
        host=database["HOST"], port=database["PORT"], user=database["USER"], password=database["PASSWORD"],
        dbname=database["NAME"], autocommit=True,
    ) as other:  # fmt: skip
        other.execute("SELECT pg_terminate_backend(%s)", [backend])
    request_started.send(sender=None)  # what Django does before each request
    assert list(get_user_model().objects.values_list("username", flat=True)) == ["kept"]
    assert connection.connection.info.backend_pid != backend, "answered by a new connection"
