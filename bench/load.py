"""Load benchmark (not a test): 50 people polling the overview of 5,000 pods, through gunicorn on loopback.

It needs the database bench/overview.py leaves with --keepdb (5,000 pods, verdicts stored), adds users
`load-0` ... `load-49`, starts gunicorn (`--workers`, default 3) on 127.0.0.1, and runs Locust headless
(bench/locustfile.py) for `--minutes` (default 5), then prints requests, failures, median and p95 per
request kind and in total. Run with `make bench` (which builds the database first), or:
  .venv/bin/python bench/overview.py --pods 5000 --repeat 3 --keepdb && .venv/bin/python bench/load.py"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE = "test_driftwatch_bench_overview"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--database", default=DATABASE, help="test_driftwatch_bench_scale: bench/scale.py --keepdb")
    parser.add_argument("--out", type=Path, help="also write the totals as JSON to this file (for bench/table.py)")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]

    base = os.environ.get("DATABASE_URL", "postgres://driftwatch:driftwatch@127.0.0.1:5432/driftwatch").rsplit("/", 1)[
        0
    ]
    password = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "DATABASE_URL": f"{base}/{args.database}",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "HTTPS": "false",
        "DEBUG": "false",
        "DJANGO_SETTINGS_MODULE": "dashboard.settings",
        "DRIFTWATCH_LOAD_PASSWORD": password,
        "DRIFTWATCH_LOAD_USERS": str(args.users),
    }
    env["DRIFTWATCH_LOAD_SESSIONS"] = create_users(env, args.users, password)
    url = f"http://127.0.0.1:{args.port}"
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "gunicorn"), "dashboard.wsgi", "--bind", f"127.0.0.1:{args.port}",
         "--workers", str(args.workers), "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    try:
        wait_for(url)
        with tempfile.TemporaryDirectory() as folder:
            prefix = Path(folder) / "load"
            subprocess.run(
                [str(ROOT / ".venv" / "bin" / "locust"), "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
                 "-u", str(args.users), "-r", "5", "-t", f"{int(args.minutes * 60)}s", "--host", url,
                 "--csv", str(prefix), "--only-summary", "--loglevel", "WARNING"],
                cwd=ROOT, env=env, check=False,
            )  # fmt: skip
            totals = report(Path(f"{prefix}_stats.csv"))
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({"users": args.users, "minutes": args.minutes, **totals}))
    finally:
        server.terminate()
        server.wait(timeout=30)


def create_users(env: dict[str, str], count: int, password: str) -> str:
    """Viewers load-0 ... load-N, and a logged-in session for each (comma-separated session keys): 50 logins at
    once would measure the password hash (deliberately slow), not the pages."""
    script = (
        "import django, os; django.setup()\n"
        "from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model\n"
        "from django.contrib.auth.hashers import make_password\n"
        "from django.contrib.sessions.backends.db import SessionStore\n"
        "from drift.models import Membership\n"
        "User = get_user_model(); hashed = make_password(os.environ['DRIFTWATCH_LOAD_PASSWORD'])\n"
        "keys = []\n"
        f"for index in range({count}):\n"
        "    user, made = User.objects.update_or_create(username=f'load-{index}', defaults={'password': hashed})\n"
        "    Membership.objects.get_or_create(user=user, defaults={'role': 'viewer', 'namespaces': []})\n"
        "    session = SessionStore()\n"
        "    session[SESSION_KEY] = str(user.pk)\n"
        # The backend a password login records: a session naming a backend not configured is anonymous.
        "    session[BACKEND_SESSION_KEY] = 'dashboard.auth.PasswordBackend'\n"
        "    session[HASH_SESSION_KEY] = user.get_session_auth_hash()\n"
        "    session.create(); keys.append(session.session_key)\n"
        "from django.conf import settings\n"
        "assert 'dashboard.auth.PasswordBackend' in settings.AUTHENTICATION_BACKENDS\n"
        "print(','.join(keys))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return done.stdout.strip().splitlines()[-1]


def wait_for(url: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit("gunicorn did not answer")


def report(stats: Path) -> dict:
    print(f"{'request':<32} {'count':>7} {'failures':>9} {'median ms':>10} {'p95 ms':>8} {'max ms':>8}")
    totals: dict = {}
    with stats.open() as file:
        for row in csv.DictReader(file):
            slowest = float(row["Max Response Time"])
            print(f"{row['Name']:<32} {row['Request Count']:>7} {row['Failure Count']:>9} "
                  f"{row['Median Response Time']:>10} {row['95%']:>8} {slowest:>8.0f}")  # fmt: skip
            if row["Name"] == "Aggregated":
                totals = {"requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                          "median_ms": float(row["Median Response Time"]), "p95_ms": float(row["95%"]),
                          "max_ms": slowest}  # fmt: skip
    return totals


if __name__ == "__main__":
    main()
