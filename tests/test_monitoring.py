"""deploy/monitoring: the alerting rules pass `promtool check rules` (Prometheus' own checker, built from the Go
module proxy by scripts/promtool), and the rules and the Grafana dashboard name only metrics /metrics exports."""

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from dashboard.metrics import GAUGE_NAMES, PROCESS_NAMES

ROOT = Path(__file__).resolve().parent.parent
MONITORING = ROOT / "deploy" / "monitoring"
RULES = MONITORING / "driftwatch-rules.yaml"
DASHBOARD = MONITORING / "driftwatch-dashboard.json"
METRIC_NAME = re.compile(r"\bdriftwatch_[a-z_]+")
# What a histogram exports besides its own name.
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def exported_names() -> set[str]:
    names = set(GAUGE_NAMES) | set(PROCESS_NAMES)
    return names | {name + suffix for name in PROCESS_NAMES for suffix in HISTOGRAM_SUFFIXES if "duration" in name}


def expressions(node: object) -> list[str]:
    """Every PromQL expression of a dashboard: `expr` of targets, `query` of template variables."""
    if isinstance(node, dict):
        found = [value for key, value in node.items() if key in ("expr", "query") and isinstance(value, str)]
        return found + [expr for value in node.values() for expr in expressions(value)]
    if isinstance(node, list):
        return [expr for value in node for expr in expressions(value)]
    return []


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run([str(ROOT / "scripts" / "promtool"), "check", "rules", str(RULES)],
                            capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 4 rules found" in result.stdout


def test_promtool_refuses_a_broken_rule(tmp_path: Path) -> None:
    """The check above can fail: a rule with a PromQL syntax error is refused."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        yaml.safe_dump({"groups": [{"name": "x", "rules": [{"alert": "X", "expr": "driftwatch_pods >"}]}]})
    )
    result = subprocess.run([str(ROOT / "scripts" / "promtool"), "check", "rules", str(broken)],
                            capture_output=True, text=True, timeout=1800)  # fmt: skip
    assert result.returncode != 0


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_only_exported_metrics_are_used(source: str) -> None:
    if source == "rules":
        groups = yaml.safe_load(RULES.read_text())["groups"]
        texts = [rule["expr"] for group in groups for rule in group["rules"]]
    else:
        texts = expressions(json.loads(DASHBOARD.read_text()))
    used = {name for text in texts for name in METRIC_NAME.findall(text)}
    assert used, "no metric found: the pattern or the file is wrong"
    assert used <= exported_names(), used - exported_names()


def test_the_dashboard_shows_every_exported_metric() -> None:
    texts = expressions(json.loads(DASHBOARD.read_text()))
    used = {name for text in texts for name in METRIC_NAME.findall(text)}
    shown = {name.removesuffix("_bucket") for name in used}
    assert set(GAUGE_NAMES) | set(PROCESS_NAMES) <= shown
