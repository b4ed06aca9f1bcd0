"""The overview of several clusters (issue 19): its queries do not grow with the clusters, each card's counts are
drift.verdicts' own, and the cluster and namespace filters (and an operator's scope) hold in the queries that read
every cluster at once."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from drift import verdicts
from drift.models import Consumption, Observation
from drift.vocabulary import VERDICT_ORDER
from tests.facts import Facts, user, value_hash

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("plain_http")]


def cluster_with(name: str, stale: int, fresh: int, propagating: bool = True) -> Facts:
    """A cluster whose `stale` workloads read env-config (changed since they started), `fresh` ones read it too
    but started after the change, one of each in namespace shop too; and a volume its kubelet refreshed (so the
    card says the measured delay, read by its own query)."""
    facts = Facts.for_cluster(name)
    facts.source("env-config", (90, {"level": "INFO"}), (10, {"level": "DEBUG"}))
    facts.source("env-config", (90, {"level": "INFO"}), (10, {"level": "DEBUG"}), namespace="shop")
    for index in range(stale):
        facts.pod(f"stale-{index}", f"stale-{index}-a", [{"source_name": "env-config"}])
    for index in range(fresh):
        facts.pod(f"fresh-{index}", f"fresh-{index}-a", [{"source_name": "env-config"}], started_minutes_ago=5)
    facts.pod("shop-stale", "shop-stale-a", [{"source_name": "env-config"}], namespace="shop")
    facts.pod("shop-fresh", "shop-fresh-a", [{"source_name": "env-config"}], namespace="shop", started_minutes_ago=5)
    if propagating:
        facts.source("files", (90, {"level": "INFO"}), (10, {"level": "DEBUG"}))
        pod = facts.pod("files", "files-a", [{"source_name": "files", "mode": "volume", "mount_path": "/etc/config"}])
        Observation.objects.create(
            consumption=Consumption.objects.get(container__pod=pod), observed_at=facts.at(1), ok=True,
            key_hashes={"level": value_hash("DEBUG")}, volume_written_at=facts.at(10) + timedelta(seconds=40),
        )  # fmt: skip
    facts.run(minutes_ago=3, counts={"stale": stale})
    facts.run(minutes_ago=1, counts={"stale": stale + 1})
    verdicts.facts_changed(facts.cluster)
    return facts


def cards(response) -> dict[str, str]:
    """{cluster name: the HTML of its card}."""
    content = response.content.decode()
    found = {}
    for card in re.findall(r'<section class="card cluster".*?</section>', content, re.S):
        found[re.search(r'<h2 id="cluster-\d+">([^<]+)</h2>', card).group(1)] = card
    return found


def listed(card: str) -> list[str]:
    """The workloads a card lists, in its order."""
    return re.findall(r'<a href="/clusters/[^/]+/[^/]+/workloads/\w+/([\w-]+)/">', card)


def totals(card: str) -> dict[str, int]:
    header = re.search(r'<span class="totals">(.*?)</span>\s*</header>', card, re.S).group(1)
    return {
        verdict: int(count) for count, verdict in re.findall(r'<span class="verdict \w+">(\d+) (\w+)</span>', header)
    }


@pytest.mark.parametrize("is_operator", [False, True])
@pytest.mark.parametrize(
    "query", [{}, {"namespace": "shop"}, {"q": "stale"}, {"namespace": "shop", "source": "env"}],
    ids=["every-namespace", "one-namespace", "search", "namespace-and-source"],
)  # fmt: skip
def test_its_queries_do_not_grow_with_clusters(client, is_operator, query):
    """With a namespace filter or a search too: each chart still counts its whole cluster, and a search finds
    what it finds, for every cluster at once."""
    client.force_login(user("olga", "operator") if is_operator else user("vera", "viewer"))
    counts = []
    for first, last in ((0, 1), (1, 4)):
        for index in range(first, last):
            cluster_with(f"c{index}", stale=2 + index, fresh=1)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse("overview"), query)
        assert response.status_code == 200
        assert len(cards(response)) == last
        counts.append(len(queries))
    assert counts[0] == counts[1], "\n".join(q["sql"][:150] for q in queries.captured_queries)


def test_each_cards_counts_and_list_are_drift_verdicts_own(viewer_client):
    made = [cluster_with("alpha", stale=3, fresh=2), cluster_with("beta", stale=1, fresh=4),
            cluster_with("gamma", stale=0, fresh=1, propagating=False)]  # fmt: skip
    shown = cards(viewer_client.get(reverse("overview")))
    assert set(shown) == {"alpha", "beta", "gamma"}
    for facts in made:
        card = shown[facts.cluster.name]
        counted = verdicts.cluster_counts(facts.cluster)
        assert totals(card) == {v: counted[v] for v in VERDICT_ORDER if counted[v]}
        attention = verdicts.workload_summaries(facts.cluster, attention=True)
        worst_first = sorted(attention, key=lambda s: verdicts.listing_order(verdicts.ATTENTION, s))
        # Worst first within each namespace, as the card groups them.
        namespaces = sorted({s.namespace for s in worst_first})
        assert listed(card) == [s.name for ns in namespaces for s in worst_first if s.namespace == ns]
        assert f"{facts.cluster.runs.count()} snapshots" in card  # its own chart, not another cluster's
    assert "stale-2" in listed(shown["alpha"]) and "stale-2" not in listed(shown["beta"])


def test_the_cluster_and_namespace_filters_hold_in_every_cluster(viewer_client):
    cluster_with("alpha", stale=2, fresh=1)
    cluster_with("beta", stale=3, fresh=1)
    one = cards(viewer_client.get(reverse("overview"), {"cluster": "beta"}))
    assert list(one) == ["beta"]
    assert sorted(listed(one["beta"])) == ["files", "shop-stale", "stale-0", "stale-1", "stale-2"]
    shop = cards(viewer_client.get(reverse("overview"), {"namespace": "shop"}))
    assert {name: listed(card) for name, card in shop.items()} == {"alpha": ["shop-stale"], "beta": ["shop-stale"]}
    fresh_in_shop = cards(viewer_client.get(reverse("overview"), {"namespace": "shop", "verdict": "fresh"}))
    assert {name: listed(card) for name, card in fresh_in_shop.items()} == {
        "alpha": ["shop-fresh"], "beta": ["shop-fresh"]
    }  # fmt: skip


def test_an_operator_may_roll_out_only_within_her_scope_on_every_card(client):
    cluster_with("alpha", stale=2, fresh=1)
    cluster_with("beta", stale=2, fresh=1)
    client.force_login(user("olga", "operator", ["beta/shop"]))
    shown = cards(client.get(reverse("overview")))
    selectable = {name: re.findall(r'aria-label="Select Deployment/([\w-]+)"', card) for name, card in shown.items()}
    assert selectable == {"alpha": [], "beta": ["shop-stale"]}


@pytest.fixture
def viewer_client(client):
    client.force_login(user("vera", "viewer"))
    return client


def test_with_several_clusters_each_card_lists_its_worst_and_links_to_its_own_view(viewer_client):
    from dashboard.pages.overview import CARD_SIZE, PAGE_SIZE

    alpha = cluster_with("alpha", stale=CARD_SIZE + 3, fresh=1)
    cluster_with("beta", stale=1, fresh=1)
    shown = cards(viewer_client.get(reverse("overview")))
    attention = verdicts.workload_summaries(alpha.cluster, attention=True)
    worst = sorted(attention, key=lambda s: verdicts.listing_order(verdicts.ATTENTION, s))[:CARD_SIZE]
    assert sorted(listed(shown["alpha"])) == sorted(s.name for s in worst)
    assert f"the first {CARD_SIZE} of {len(attention)}" in shown["alpha"]
    assert f'<a href="/?cluster=alpha">All {len(attention)} in alpha, with counts per namespace</a>' in shown["alpha"]
    assert '<a href="/?cluster=beta">beta alone, with counts per namespace</a>' in shown["beta"]
    assert 'class="namespaces"' not in shown["alpha"] and 'rel="next"' not in shown["alpha"]
    # The cluster's own view: its pages of PAGE_SIZE and its counts per namespace; a filter goes along.
    own = cards(viewer_client.get(reverse("overview"), {"cluster": "alpha"}))["alpha"]
    assert len(listed(own)) == min(len(attention), PAGE_SIZE) and 'class="namespaces"' in own
    shop = cards(viewer_client.get(reverse("overview"), {"namespace": "shop"}))
    assert '<a href="/?namespace=shop&amp;cluster=alpha">' in shop["alpha"]


def test_each_clusters_refresh_delays_are_read_at_once_and_bounded_per_distinct_write():
    """measured.refresh_delays_of reads every cluster in one query with a bound per cluster on distinct writes:
    a write read by many cycles (more reads than the bound) must not crowd out an older write, nor one cluster
    another's."""
    from drift.verdicts import measured

    busy, quiet = cluster_with("busy", stale=0, fresh=0), cluster_with("quiet", stale=0, fresh=0)
    # busy: a second pod whose volume saw the change later (50 s), read by many more cycles than the bound.
    pod = busy.pod("files", "files-b", [{"source_name": "files", "mode": "volume", "mount_path": "/etc/config"}])
    written = busy.at(10) + timedelta(seconds=50)
    Observation.objects.bulk_create(
        Observation(consumption=Consumption.objects.get(container__pod=pod), observed_at=busy.at(9) + timedelta(
            seconds=cycle), ok=True, key_hashes={"level": value_hash("DEBUG")}, volume_written_at=written)
        for cycle in range(measured.SAMPLE_LIMIT * 4 + 10)
    )  # fmt: skip
    with CaptureQueriesContext(connection) as queries:
        delays = measured.refresh_delays_of([busy.cluster, quiet.cluster], busy.now)
    assert len(queries) == 2
    assert sorted(delays[busy.cluster.pk].seconds) == [40.0, 50.0]
    assert delays[quiet.cluster.pk].seconds == (40.0,)
    assert delays[busy.cluster.pk] == measured.refresh_delays(busy.cluster, busy.now)


def test_with_a_namespace_filter_each_chart_still_counts_its_whole_cluster(viewer_client):
    made = [cluster_with("alpha", stale=2, fresh=1), cluster_with("beta", stale=3, fresh=1)]
    shown = cards(viewer_client.get(reverse("overview"), {"namespace": "shop"}))
    for facts in made:
        whole = verdicts.cluster_counts(facts.cluster)["stale"]
        assert whole > 1  # more than namespace shop's one stale pod
        charted = re.search(r"Stale pods in \w+ since [\d-]+ [\d:]+ \w+: (\d+) now", shown[facts.cluster.name])
        assert int(charted.group(1)) == whole


def test_a_search_finds_in_every_cluster_what_it_finds_in_each(viewer_client):
    cluster_with("alpha", stale=3, fresh=1)
    cluster_with("beta", stale=1, fresh=2)
    for query in ({"q": "stale-0"}, {"q": "fresh"}, {"source": "files"}, {"namespace": "shop", "q": "shop"}):
        every = cards(viewer_client.get(reverse("overview"), query))
        for name in ("alpha", "beta"):
            alone = cards(viewer_client.get(reverse("overview"), {**query, "cluster": name}))[name]
            assert sorted(listed(every[name])) == sorted(listed(alone)), (query, name)
            assert totals(every[name]) == totals(alone), (query, name)
    fresh = cards(viewer_client.get(reverse("overview"), {"q": "fresh"}))
    assert sorted(listed(fresh["beta"])) == ["fresh-0", "fresh-1", "shop-fresh"]
