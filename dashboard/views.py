"""Thin views: check access, ask drift's query functions, render a template or one of its partials."""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from drift.models import Cluster


def overview(request: HttpRequest) -> HttpResponse:
    clusters = Cluster.objects.prefetch_related("runs")
    return render(request, "dashboard/overview.html", {"clusters": clusters})


@login_not_required
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})
