"""Print the issue's table of goals with this machine's numbers, from the JSON the benchmarks wrote
(`make bench` runs them first). A missing result is said, not guessed. Figures carry their min-max within
the run: on a small shared machine the noise is as large as the effect."""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "artifacts" / "bench"


def load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def main() -> None:
    snapshot, overview, load_test, workers = load("snapshot"), load("overview"), load("load"), load("workers")
    rows: list[tuple[str, str, str]] = []
    missing = "not measured (see its benchmark's output)"
    if overview:
        sizes = {int(pods): result for pods, result in overview["sizes"].items()}
        small, large = min(sizes), max(sizes)
        big = sizes[large]
        rows.append(("overview server time, median / p95", "≤ 100 ms / ≤ 150 ms",
                     f"{big['median_ms']:.0f} ms / {big['p95_ms']:.0f} ms (min-max {big['min_ms']:.0f}-"
                     f"{big['max_ms']:.0f} ms; {large} pods)"))  # fmt: skip
        rows.append((f"overview time at {large} pods ÷ at {small} pods", "≤ 1.3",
                     f"{big['median_ms'] / sizes[small]['median_ms']:.2f} (medians; {small} pods: "
                     f"{sizes[small]['min_ms']:.0f}-{sizes[small]['max_ms']:.0f} ms)"))  # fmt: skip
        rows.append(("overview queries", "≤ 15, independent of pods",
                     " / ".join(f"{sizes[p]['queries']} at {p} pods" for p in sorted(sizes))))  # fmt: skip
        rows.append(("overview HTML, default view", "≤ 60 KB", f"{big['html_bytes'] / 1024:.1f} KB"))
        rows.append(("overview poll, nothing new (204)", "—", f"{big['nothing_new_median_ms']:.0f} ms median"))
        rows.append(("/metrics scrape", "≤ 200 ms",
                     f"{big['metrics_median_ms']:.0f} ms median (min-max {big['metrics_min_ms']:.0f}-"
                     f"{big['metrics_max_ms']:.0f} ms), {big['metrics_queries']} queries"))  # fmt: skip
        rows.append(("driftreport --json", "≤ 2 s", f"{big['driftreport_s']:.2f} s"))
    else:
        rows.append(("overview", "", missing))
    if load_test:
        rows.append((f"{load_test['users']} users polling every 10 s + workload pages, {load_test['minutes']:g} min",
                     "p95 ≤ 300 ms, 0 errors",
                     f"p95 {load_test['p95_ms']:.0f} ms, median {load_test['median_ms']:.0f} ms, max "
                     f"{load_test['max_ms']:.0f} ms, {load_test['failures']} errors in {load_test['requests']} "
                     "requests"))  # fmt: skip
    else:
        rows.append(("Locust", "", missing))
    if snapshot:
        steady, after = snapshot["steady"], snapshot["after_changes"]
        rows.append(("idle cycle ÷ raw LIST, steady / right after changes", "≤ 1.2 / ≤ 1.3",
                     f"{steady['ratio']:.2f} (min-max {steady['ratio_min']:.2f}-{steady['ratio_max']:.2f}) / "
                     f"{after['ratio']:.2f} (min-max {after['ratio_min']:.2f}-{after['ratio_max']:.2f}); "
                     f"{snapshot['pods']} pods; rows inserted {steady['inserted']} / {after['inserted']}"))  # fmt: skip
        rows.append(("first cycle", "—", f"{snapshot['first_cycle_s']:.0f} s, {snapshot['exec_probes']} exec probes"))
    else:
        rows.append(("idle cycle ÷ raw LIST", "", missing))
    if workers:
        one, two = workers["timings"]["1"], workers["timings"]["2"]
        rows.append((f"{workers['clusters']} clusters, two workers ÷ one", "about 0.5",
                     f"{workers['ratio']:.2f} (one: {statistics.median(one):.1f} s, {min(one):.1f}-{max(one):.1f}; "
                     f"two: {statistics.median(two):.1f} s, {min(two):.1f}-{max(two):.1f})"))  # fmt: skip
    else:
        rows.append(("two workers ÷ one", "", missing))
    rows.extend(podwatch_rows(missing))
    rows.extend(scale_rows(missing))
    width = max(len(measure) for measure, _, _ in rows)
    print(f"| {'measure':<{width}} | goal | this machine |")
    print(f"|{'-' * (width + 2)}|---|---|")
    for measure, goal, measured in rows:
        print(f"| {measure:<{width}} | {goal} | {measured} |")
    sys.stdout.flush()


def podwatch_rows(missing: str) -> list[tuple[str, str, str]]:
    """Issue 19's watch rows at one cluster of 5,000 pods (bench/podwatch.py)."""
    podwatch = load("podwatch")
    if not podwatch:
        return [("watching pods (idle minute, pod started, ConfigMap edit)", "", missing)]
    idle = podwatch["idle"]
    rows = [(f"requests / bytes per idle minute ÷ one raw LIST, {podwatch['pods']:,} pods", "≤ 0.2",
             f"{idle['request_ratio_min']:.3f}-{idle['request_ratio_max']:.3f} / "
             f"{idle['ratio_min']:.3f}-{idle['ratio_max']:.3f} ({len(idle['runs'])} minutes)")]  # fmt: skip
    for what, seconds in (("pod started", podwatch["pod"]["started"]), ("pod replaced", podwatch["pod"]["replaced"]),
                          ("ConfigMap edit → 500 verdicts", podwatch["config_map"]["seconds"])):  # fmt: skip
        rows.append((f"{what} → row, probe, verdict" if what.startswith("pod") else what, "≤ 5 s",
                     f"median {statistics.median(seconds):.2f} s (min-max {min(seconds):.2f}-{max(seconds):.2f}, "
                     f"{len(seconds)} runs)"))  # fmt: skip
    return rows


def scale_rows(missing: str) -> list[tuple[str, str, str]]:
    """Issue 19's rows: ten clusters, 50,000 pods (bench/scale.py, bench/load.py on its database)."""
    rows: list[tuple[str, str, str]] = []
    read, load_test, watcher, processes = load("scale-read"), load("scale-load"), load("scale-watcher"), load("scale")
    if read:
        one, every = read["overview_one"], read["overview_all"]
        rows.append((f"overview, {read['clusters']} clusters ({read['pods']:,} pods), median / p95", "≤ 100 / 150 ms",
                     f"{every['median_ms']:.0f} / {every['p95_ms']:.0f} ms (min-max {every['min_ms']:.0f}-"
                     f"{every['max_ms']:.0f})"))  # fmt: skip
        rows.append(("overview, every cluster ÷ one cluster", "≤ 1.3",
                     f"{every['median_ms'] / one['median_ms']:.2f} (one: {one['median_ms']:.0f} ms)"))  # fmt: skip
        metrics = read["metrics"]
        rows.append((f"/metrics scrape at {read['pods']:,} pods", "≤ 300 ms",
                     f"{metrics['median_ms']:.0f} ms median (min-max {metrics['min_ms']:.0f}-"
                     f"{metrics['max_ms']:.0f}), {metrics['bytes'] / 1e6:.1f} MB"))  # fmt: skip
    else:
        rows.append(("overview / /metrics at 10 clusters", "", missing))
    if load_test:
        rows.append((f"{load_test['users']} users, 10 clusters, {load_test['minutes']:g} min", "p95 ≤ 300 ms, 0 errors",
                     f"p95 {load_test['p95_ms']:.0f} ms, median {load_test['median_ms']:.0f} ms, "
                     f"{load_test['failures']} errors in {load_test['requests']} requests"))  # fmt: skip
    for name, result in (("watcher", watcher or processes), ("worker", processes)):
        rss = (result or {}).get(f"{name}_rss")
        if rss:
            assert result is not None
            minutes = result["soak_minutes"]
            if name == "worker":
                minutes = result.get("worker_soak_minutes", minutes)
            busy = f"; {rss['config_map_edits']} edits, {rss['restarts']} restarts" if "restarts" in rss else ""
            rows.append((f"{name} RSS, {result['clusters']} clusters", "stated; no growth",
                         f"{rss['first_mib']:.0f} MiB, {rss['last_mib']:.0f} MiB after "
                         f"{minutes:g} min (peak {rss['peak_mib']:.0f}{busy})"))  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
