"""The login page and the two ends of single sign-on: the redirect to the identity provider and its callback.

The callback is a GET that logs in and may create an account: the OpenID Connect code flow is defined that way.
It acts only with a `state` this session was given, the nonce in the ID token, and the PKCE verifier."""

from __future__ import annotations

from typing import Any

import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from dashboard.forms import LoginForm
from dashboard.sso import SESSION_KEY, SsoRefused, SsoTokenTime
from drift import audit
from drift.models import AuditEvent


class LoginView(auth_views.LoginView):
    """Django's login page, offering single sign-on when it is configured, and passwords unless switched off."""

    authentication_form = LoginForm

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["sso_enabled"] = settings.SSO_ENABLED
        context["password_login"] = settings.DRIFTWATCH_PASSWORD_LOGIN
        return context

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.DRIFTWATCH_PASSWORD_LOGIN:
            messages.error(request, "Password login is switched off here: log in with single sign-on.")
            return redirect("login")
        return super().post(request, *args, **kwargs)


class SsoStart(OIDCAuthenticationRequestView):
    """Sends the browser to the provider's login page, with a fresh state, nonce and PKCE challenge."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.SSO_ENABLED:
            raise Http404("single sign-on is not configured")
        return super().dispatch(request, *args, **kwargs)


class SsoCallback(OIDCAuthenticationCallbackView):
    """Where the provider sends the browser back. Every failure ends on the login page with what went wrong;
    the provider's own error text (which could echo anything) is shown cut short, never its token answers.
    A callback that does not carry a state this session was given changes nothing: anyone can link to this URL,
    and a link must not log the user out (the library's own view does, on any `error`)."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not settings.SSO_ENABLED:
            raise Http404("single sign-on is not configured")
        try:
            return super().dispatch(request, *args, **kwargs)
        except SsoRefused as refusal:
            # Audited by the backend, with the groups the provider sent.
            messages.error(request, f"Single sign-on refused: {refusal}.")
            return redirect("login")
        except SsoTokenTime as error:
            skew = settings.DRIFTWATCH_OIDC_CLOCK_SKEW_SECONDS
            return self._failed(
                f"{error}; check that this server's clock and the provider's agree (allowed skew: {skew} s)"
            )
        except SuspiciousOperation:
            return self._failed("the login answer does not belong to this browser session or did not verify")
        except requests.RequestException as error:
            return self._failed(f"the identity provider could not be asked ({type(error).__name__})")

    def get(self, request: HttpRequest) -> HttpResponse:
        if request.GET.get("error"):
            states = request.session.get("oidc_states", {})
            state = request.GET.get("state", "")
            if state not in states:
                return self._failed("the login answer does not belong to this browser session or did not verify")
            # This session's login, refused by the provider: the state is spent; whoever is logged in stays so.
            del states[state]
            request.session["oidc_states"] = states
            return self.login_failure()
        return super().get(request)

    def login_success(self) -> HttpResponse:
        response = super().login_success()
        self.request.session[SESSION_KEY] = self.user.sso_session
        return response

    def login_failure(self) -> HttpResponse:
        error = self.request.GET.get("error")
        if error:
            return self._failed(f"the identity provider answered {error[:100]!r}")
        return self._failed("the login did not complete; try again")

    def _failed(self, reason: str) -> HttpResponseRedirect:
        # Anyone can send the browser here with an error: counted, listed only a few an hour.
        audit.record_refusal(
            "", AuditEvent.Action.LOGIN_FAILED, f"single sign-on failed: {reason}", key="sso", detail={"method": "sso"}
        )
        messages.error(self.request, f"Single sign-on failed: {reason}.")
        return redirect("login")
