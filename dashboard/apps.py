from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Driftwatch dashboard"

    def ready(self) -> None:
        from dashboard import signals  # noqa: F401 - connects the login audit receivers
