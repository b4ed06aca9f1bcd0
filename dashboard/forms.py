"""Forms for every filter a page takes from its query string. A bad value never reaches a query: the page
shows the form's message and leaves that filter out (the CSV export, which cannot show a message, answers 400)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.core.validators import MaxLengthValidator, MaxValueValidator, MinValueValidator

from dashboard.pages import rollouts as rollout_pages
from dashboard.pages.audit import AuditFilters, action_families
from dashboard.pages.overview import OverviewFilters
from drift.models import AuditEvent, Rollout
from drift.reload_settings import CLEAR
from drift.vocabulary import VERDICT_ORDER, Reload

# Audit dates: wide enough for any real history, narrow enough that "the day after" is still a date.
FIRST_DATE = dt.date(2000, 1, 1)
LAST_DATE = dt.date(2999, 12, 31)
DATE_MESSAGE = f"Give a date between {FIRST_DATE.isoformat()} and {LAST_DATE.isoformat()} (YYYY-MM-DD)."
SEARCH_MAX = 200


class FilterForm(forms.Form):
    """Every field optional; `valid()` keeps the fields that passed, so one bad value does not hide the rest."""

    def valid(self) -> dict[str, object]:
        self.is_valid()
        return {name: value for name, value in self.cleaned_data.items() if value not in (None, "")}

    def messages(self) -> list[str]:
        """One line per problem, naming the field as the page labels it."""
        self.is_valid()
        lines = []
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else "Filters"
            lines.append(f"{label}: {' '.join(str(error) for error in errors)}")
        return lines


def _date_field(label: str) -> forms.DateField:
    return forms.DateField(
        label=label,
        required=False,
        input_formats=["%Y-%m-%d"],
        validators=[MinValueValidator(FIRST_DATE, DATE_MESSAGE), MaxValueValidator(LAST_DATE, DATE_MESSAGE)],
        error_messages={"invalid": DATE_MESSAGE},
    )


class OverviewFilterForm(FilterForm):
    cluster = forms.SlugField(label="Cluster", required=False, max_length=63)
    namespace = forms.CharField(label="Namespace", required=False, max_length=253)
    verdict = forms.ChoiceField(
        label="Verdict", required=False, choices=[("", "any"), *[(v, v) for v in [*VERDICT_ORDER, "split"]]]
    )
    source = forms.CharField(label="ConfigMap or Secret", required=False, max_length=253)
    q = forms.CharField(label="Search", required=False, max_length=SEARCH_MAX)

    def filters(self) -> OverviewFilters:
        return OverviewFilters(**self.valid())  # type: ignore[arg-type]


class RolloutFilterForm(FilterForm):
    cluster = forms.SlugField(label="Cluster", required=False, max_length=63)
    namespace = forms.CharField(label="Namespace", required=False, max_length=253)
    state = forms.ChoiceField(
        label="State",
        required=False,
        choices=[
            ("", "any"), (rollout_pages.RUNNING, "running"), (rollout_pages.FINISHED, "finished"),
            *Rollout.Status.choices,
        ],
    )  # fmt: skip

    def filters(self) -> rollout_pages.RolloutFilters:
        return rollout_pages.RolloutFilters(**self.valid())  # type: ignore[arg-type]


class AuditFilterForm(FilterForm):
    action = forms.ChoiceField(label="Action", required=False)
    actor = forms.CharField(label="Actor", required=False, max_length=150)
    cluster = forms.CharField(label="Cluster", required=False, max_length=63)
    namespace = forms.CharField(label="Namespace", required=False, max_length=253)
    q = forms.CharField(label="Text", required=False, max_length=SEARCH_MAX)
    since = _date_field("From")
    until = _date_field("Until")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        families = [(family, f"{family}*") for family in action_families()]
        actions = [(value, value) for value in AuditEvent.Action.values]
        self.fields["action"].choices = [("", "any"), *families, *actions]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, object]:
        cleaned = super().clean() or {}
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and since > until:
            self.add_error("until", "Until must not be before From.")
        return cleaned

    def filters(self) -> AuditFilters:
        return AuditFilters(**self.valid())  # type: ignore[arg-type]


class LoginForm(AuthenticationForm):
    """Django's login form, with the user name's length checked before any backend sees it: no account has a
    longer name, and the login throttle's own table would refuse it with a database error."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        field = self.fields["username"]
        field.validators.append(MaxLengthValidator(field.max_length))  # type: ignore[attr-defined]


class ReloadSettingForm(forms.Form):
    """Whether a workload's app re-reads a rewritten config file, for every container or one of its own."""

    container = forms.ChoiceField(label="Container", required=False)
    reload = forms.ChoiceField(
        label="The app",
        choices=[
            (Reload.HOT.value, "re-reads its files (hot)"),
            (Reload.RESTART.value, "needs a restart to read them"),
            (CLEAR, "not set (as the pod and the cluster say)"),
        ],
    )

    def __init__(self, *args: Any, containers: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["container"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "every container"), *[(name, name) for name in containers]]


class RestoreForm(forms.Form):
    """What a restore's confirmation posts: the resourceVersion the preview showed (the precondition), and whether
    to roll out the consumers that read the ConfigMap only at start. The data itself never comes from the page."""

    resource_version = forms.CharField(max_length=32)
    roll_out = forms.BooleanField(required=False)
