from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Driftwatch dashboard"

    def ready(self) -> None:
        from django.conf import settings
        from django.core.exceptions import ImproperlyConfigured

        from dashboard import signals  # noqa: F401 - connects the login audit receivers
        from dashboard.sso import parse_group_roles

        # Checked when any process starts (web, worker, manage.py), not at the first single sign-on.
        try:
            parse_group_roles(settings.DRIFTWATCH_OIDC_GROUP_ROLES)
        except ValueError as error:
            raise ImproperlyConfigured(str(error)) from None
