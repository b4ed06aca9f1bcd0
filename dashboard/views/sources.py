import re

from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from dashboard.access import may_roll_out
from dashboard.htmx import HtmxHttpRequest
from dashboard.pages import source as page
from drift.diffs import key_diffs
from drift.models import Cluster, SourceVersion
from drift.vocabulary import SourceKind

# What may appear in a downloaded file's name: anything else becomes "_".
UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")


@vary_on_headers("HX-Request")
def source(request: HtmxHttpRequest, cluster: str, namespace: str, kinds: str, name: str) -> HttpResponse:
    """A ConfigMap's or Secret's version timeline, a key-level diff of any two versions (?a=&b=, version ids),
    and the pods that consume it. Secrets: keys and which changed, never values (none are stored)."""
    kind = SourceKind.from_plural(kinds)
    found = get_object_or_404(Cluster, name=cluster)
    history = page.source_history(found, namespace, kind, name)
    if not history:
        raise Http404(f"no {kind} {name} in namespace {namespace} of cluster {cluster}")
    by_id = {str(entry.version.pk): entry for entry in history}
    default_old = history[-2] if len(history) > 1 else history[-1]
    old = by_id.get(request.GET.get("a", ""), default_old)
    new = by_id.get(request.GET.get("b", ""), history[-1])
    secret = kind == SourceKind.SECRET
    full = request.GET.get("full") == "1"  # every line, not only the changes and three lines around them
    old_data, new_data = (None, None) if secret else page.compared(old, new)
    diffs = key_diffs(
        old.version.key_hashes,
        new.version.key_hashes,
        old_data,
        new_data,
        frozenset(old.version.binary_keys) | frozenset(new.version.binary_keys),
        context=None if full else 3,
    )
    consumers = page.source_consumers(found, namespace, kind, name)
    ctx = {
        "cluster": found,
        "namespace": namespace,
        "kind": kind,
        "kinds": kinds,
        "name": name,
        "secret": secret,
        "history": history,
        "old": old,
        "new": new,
        "diffs": diffs,
        "unchanged": [diff.key for diff in diffs if diff.status == "unchanged"],
        "full": full,
        "consumers": consumers,
        "stale_consumers": [
            workload
            for workload in page.stale_consumers(consumers)
            if not found.read_only and may_roll_out(request.user, found.name, workload.namespace)
        ],
        "content_addressed": bool(page.CONTENT_HASH_SUFFIX.search(name)),
        "in_place_edits": page.in_place_edits(name, history),
    }
    template = "dashboard/source.html"
    if request.htmx and request.htmx.target == "version-diff":
        template += "#version-diff"
    return render(request, template, ctx)


@require_GET
def download(request: HtmxHttpRequest, cluster: str, namespace: str, name: str, version: int, key: str) -> HttpResponse:
    """One key of one ConfigMap version as a file, for values too large to diff on the page. Readable by whoever
    may read the page (every logged-in user). Only ConfigMaps: a Secret's values are never stored."""
    found = get_object_or_404(
        SourceVersion.objects.select_related("source"),
        pk=version,
        source__cluster__name=cluster,
        source__namespace=namespace,
        source__kind=SourceKind.CONFIG_MAP,
        source__name=name,
    )
    if key not in found.data:
        raise Http404(f"no text key {key} in this version")
    filename = UNSAFE_FILENAME.sub("_", f"{name}-rv{found.resource_version}-{key}.txt")
    response = HttpResponse(found.data[key], content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
