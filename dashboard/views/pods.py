from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from dashboard.pages import pod as page


def pod(request: HttpRequest, cluster: str, namespace: str, name: str) -> HttpResponse:
    found = page.find_pod(cluster, namespace, name)
    if found is None:
        raise Http404(f"no pod {name} in namespace {namespace} of cluster {cluster}")
    return render(request, "dashboard/pod.html", {"detail": page.pod_detail(found), "pod": found})
