from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from drift import queries


def pod(request: HttpRequest, cluster: str, namespace: str, name: str) -> HttpResponse:
    found = queries.find_pod(cluster, namespace, name)
    if found is None:
        raise Http404(f"no pod {name} in namespace {namespace} of cluster {cluster}")
    return render(request, "dashboard/pod.html", {"detail": queries.pod_detail(found), "pod": found})
