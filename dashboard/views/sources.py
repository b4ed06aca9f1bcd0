import re
from datetime import timedelta

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from dashboard.access import may_read, may_roll_out, require_namespace_read, require_operator_on
from dashboard.forms import RestoreForm
from dashboard.htmx import HtmxHttpRequest
from dashboard.pages import source as page
from dashboard.pages.at import at_query
from drift import verdicts
from drift.blast import blast_radii, blast_radius, trouble_window
from drift.diffs import key_diffs
from drift.history import version_number
from drift.models import Cluster, SourceVersion
from drift.restore import RestoreRefused, preview, restore
from drift.vocabulary import SourceKind

# What may appear in a downloaded file's name: anything else becomes "_".
UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]")

# How many of the newest versions the source page sums up "what it did" for (older ones: on their own page).
RECENT_EFFECTS = 10


@vary_on_headers("HX-Request")
def source(request: HtmxHttpRequest, cluster: str, namespace: str, kinds: str, name: str) -> HttpResponse:
    """A ConfigMap's or Secret's version timeline, a key-level diff of any two versions (?a=1&b=3: their numbers,
    the #N every page names a version by), and the pods that consume it. Secrets: keys and which changed, never
    values (none are stored). The timeline polls itself with the stamp of what it shows (204 while nothing
    changed) and brings the consumers along; the comparison the reader chose stays as it is."""
    kind = SourceKind.from_plural(kinds)
    found = get_object_or_404(Cluster, name=cluster)
    history = page.source_history(found, namespace, kind, name)
    if not history:
        raise Http404(f"no {kind} {name} in namespace {namespace} of cluster {cluster}")
    polled = bool(request.htmx and request.htmx.target == "source-live")
    stamp = page.source_stamp(found, history)
    if polled and stamp and request.GET.get("stamp") == stamp:
        return HttpResponse(status=204)  # nothing new: htmx keeps what it shows
    consumers = page.source_consumers(found, namespace, kind, name)
    readable = may_read(request.user, cluster, namespace)  # what each version did: for readers of this namespace
    ctx = {
        "cluster": found,
        "namespace": namespace,
        "kind": kind,
        "kinds": kinds,
        "name": name,
        "secret": kind == SourceKind.SECRET,
        "history": history,
        "consumers": consumers,
        # "Roll out the stale consumers": only those this user may roll out (the confirmation checks each again).
        "stale_consumers": [
            workload
            for workload in page.stale_consumers(consumers)
            if not found.read_only and may_roll_out(request.user, found.name, workload.namespace)
        ],
        "stamp": stamp,
        "polled": polled,
        # What each of the newest versions did, summed up on its entry (the link opens the whole of it); only for
        # a reader of this namespace, as the version's own page is.
        "effects": (
            blast_radii(found, namespace, kind, name, [entry.number for entry in history[-RECENT_EFFECTS:]])
            if readable
            else {}
        ),
        "readable": readable,
        # Before an edit: what one would do to each consumer now (needs a restart, refreshes, never).
        "edits": verdicts.edit_outcomes(
            found, namespace, kind, name, [judged.row for judged in consumers], timezone.now()
        ),
    }
    if polled:  # the timeline and the consumers only: no version's data is read
        return render(request, "dashboard/source.html#source-live", ctx)
    by_number = {str(entry.number): entry for entry in history}
    default_old = history[-2] if len(history) > 1 else history[-1]
    old = by_number.get(request.GET.get("a", "").lstrip("#"), default_old)
    new = by_number.get(request.GET.get("b", "").lstrip("#"), history[-1])
    full = request.GET.get("full") == "1"  # every line, not only the changes and three lines around them
    old_data, new_data = (None, None) if ctx["secret"] else page.compared(old, new)
    diffs = key_diffs(
        old.version.key_hashes,
        new.version.key_hashes,
        old_data,
        new_data,
        frozenset(old.version.binary_keys) | frozenset(new.version.binary_keys),
        context=None if full else 3,
    )
    ctx |= {
        "old": old,
        "new": new,
        "diffs": diffs,
        "unchanged": [diff.key for diff in diffs if diff.status == "unchanged"],
        "full": full,
        "content_addressed": bool(page.CONTENT_HASH_SUFFIX.search(name)),
        "in_place_edits": page.in_place_edits(name, history),
        "can_restore": not ctx["secret"] and not found.read_only and may_roll_out(request.user, found.name, namespace),
    }
    template = "dashboard/source.html"
    if request.htmx and request.htmx.target == "version-diff":
        template += "#version-diff"
    return render(request, template, ctx)


@require_GET
def effects(request: HttpRequest, cluster: str, namespace: str, kinds: str, name: str, number: int) -> HttpResponse:
    """What did version #N of a ConfigMap or Secret do (drift.blast): the pods that took it up and when, those that
    crashed or restarted within ``?within=`` minutes of it (default 10, bounded), and the rollouts that followed.
    A viewer scoped to other namespaces gets 404 with an ``access.denied`` entry, checked on the names first."""
    kind = SourceKind.from_plural(kinds)
    require_namespace_read(request, cluster, namespace, kind, name)
    found = get_object_or_404(Cluster, name=cluster)
    minutes, refused = trouble_window(request.GET.get("within"))
    radius = blast_radius(found, namespace, kind, name, number, timedelta(minutes=minutes))
    if radius is None:
        raise Http404(f"no version #{number} of {kind} {name} in namespace {namespace} of cluster {cluster}")
    ctx = {
        "cluster": found,
        "namespace": namespace,
        "kind": kind,
        "kinds": kinds,
        "name": name,
        "radius": radius,
        # Each pod with the point-in-time query of the second after it took the version up (times are whole seconds
        # and point in time does not count a pod that started in T's own second).
        "pods": [(pod, at_query(pod.at + timedelta(seconds=1))) for pod in radius.pods],
        "minutes": minutes,
        "within_error": refused,
    }
    return render(request, "dashboard/effects.html", ctx, status=400 if refused else 200)


def _config_map_version(cluster: str, namespace: str, name: str, version: int) -> SourceVersion:
    """A ConfigMap version by its id, only within the ConfigMap the URL names (404 otherwise)."""
    return get_object_or_404(
        SourceVersion.objects.select_related("source__cluster"),
        pk=version,
        source__cluster__name=cluster,
        source__namespace=namespace,
        source__kind=SourceKind.CONFIG_MAP,
        source__name=name,
    )


@require_GET
def download(request: HtmxHttpRequest, cluster: str, namespace: str, name: str, version: int, key: str) -> HttpResponse:
    """One key of one ConfigMap version as a file, for values too large to diff on the page. Readable by whoever
    may read the page (every logged-in user). Only ConfigMaps: a Secret's values are never stored."""
    found = _config_map_version(cluster, namespace, name, version)
    if key not in found.data:
        raise Http404(f"no text key {key} in this version")
    filename = UNSAFE_FILENAME.sub("_", f"{name}-rv{found.resource_version}-{key}.txt")
    response = HttpResponse(found.data[key], content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _restorable_version(request: HttpRequest, cluster: str, namespace: str, name: str, version: int) -> SourceVersion:
    """The ConfigMap version the URL names, looked up by its id within that ConfigMap, and the user authorised on
    that version's own cluster and namespace (an operator scope), before anything else."""
    found = _config_map_version(cluster, namespace, name, version)
    require_operator_on(request, found.source, "restore a ConfigMap")
    return found


def restore_version(request: HttpRequest, cluster: str, namespace: str, name: str, version: int) -> HttpResponse:
    """GET: the preview (the diff against the live content, the API server's dry run) and the form. POST: the
    restore, refused when the ConfigMap changed after the preview (its resourceVersion is the precondition)."""
    if request.method not in ("GET", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    found = _restorable_version(request, cluster, namespace, name, version)
    back = reverse("source", args=[cluster, namespace, SourceKind.CONFIG_MAP.plural, name])
    ctx: dict[str, object] = {"version": found, "number": version_number(found), "back": back, "name": name,
                              "namespace": namespace, "cluster": found.source.cluster}  # fmt: skip
    if request.method == "POST":
        form = RestoreForm(request.POST)
        if not form.is_valid():
            ctx["refusal"] = "The form was incomplete: preview again."
            return render(request, "dashboard/restore.html", ctx, status=400)
        try:
            done = restore(
                found,
                request.user.get_username(),
                form.cleaned_data["resource_version"],
                roll_out=form.cleaned_data["roll_out"],
            )
        except RestoreRefused as error:
            ctx["refusal"] = str(error)
            return render(request, "dashboard/restore.html", ctx, status=409)
        said = f"ConfigMap {name} restored to version #{ctx['number']} (resourceVersion {done.resource_version})."
        if done.rollouts:
            said += " Rollouts: " + ", ".join(f"{r.kind}/{r.name} {r.get_status_display()}" for r in done.rollouts)
        messages.success(request, said)
        return redirect(back)
    try:
        ctx["preview"] = preview(found)
    except RestoreRefused as error:
        ctx["refusal"] = str(error)
        return render(request, "dashboard/restore.html", ctx, status=409)
    return render(request, "dashboard/restore.html", ctx)
