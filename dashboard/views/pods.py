from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.vary import vary_on_headers

from dashboard.htmx import HtmxHttpRequest
from dashboard.pages import pod as page


@vary_on_headers("HX-Request")
def pod(request: HtmxHttpRequest, cluster: str, namespace: str, name: str) -> HttpResponse:
    """What each container runs against what its sources hold now. The body polls itself, like the overview's,
    with the stamp of what it shows: 204 while nothing changed (htmx keeps the page); once the pod is gone the
    body is drawn without its poll, so polling stops there."""
    found = page.find_pod(cluster, namespace, name)
    if found is None:
        raise Http404(f"no pod {name} in namespace {namespace} of cluster {cluster}")
    polled = bool(request.htmx and request.htmx.target == "pod-body")
    stamp = page.pod_stamp(found)
    if polled and stamp and request.GET.get("stamp") == stamp:
        return HttpResponse(status=204)
    template = "dashboard/pod.html" + ("#pod-body" if polled else "")
    return render(request, template, {"detail": page.pod_detail(found), "pod": found, "stamp": stamp})
