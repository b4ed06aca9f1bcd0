"""Load test (not a test): people watching the overview, as browsers do, and opening workload pages.

Each simulated user logs in, loads the overview, then every 10 s polls its body the way htmx does (with the
stamp of what it shows: "204 nothing new" or a new body), and now and then opens one of the listed
workloads. Run by bench/load.py (50 users, 5 minutes, against gunicorn on loopback); users `load-N` share
the password in DRIFTWATCH_LOAD_PASSWORD; bench/load.py logs them in beforehand (DRIFTWATCH_LOAD_SESSIONS:
their session keys), so that the run measures the pages, not 50 password hashes at once."""

from __future__ import annotations

import os
import random
import re

from locust import HttpUser, constant, task

PASSWORD = os.environ.get("DRIFTWATCH_LOAD_PASSWORD", "")
USERS = int(os.environ.get("DRIFTWATCH_LOAD_USERS", "50"))
SESSIONS = [key for key in os.environ.get("DRIFTWATCH_LOAD_SESSIONS", "").split(",") if key]
HTMX = {"HX-Request": "true", "HX-Target": "overview-body"}
_next_user = iter(range(1_000_000))


class Watcher(HttpUser):
    wait_time = constant(10)

    def on_start(self) -> None:
        number = next(_next_user) % USERS
        if SESSIONS:
            self.client.cookies.set("sessionid", SESSIONS[number % len(SESSIONS)])
        else:
            self.log_in(f"load-{number}")
        self.stamp = ""
        self.workloads: list[str] = []
        with self.client.get("/", name="/ (full)", catch_response=True) as response:
            if 'id="overview-body"' in response.text:
                self.read(response.text)
                response.success()
            else:  # e.g. the login page after a redirect: not what this measures
                response.failure(f"not the overview (ended at {response.url})")

    def log_in(self, name: str) -> None:
        login = self.client.get("/login/", name="/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text)
        assert token, "no CSRF token on the login page"
        self.client.post(
            "/login/",
            {"username": name, "password": PASSWORD, "csrfmiddlewaretoken": token.group(1), "next": "/"},
            headers={"Referer": f"{self.host}/login/"},
            name="/login/ (post)",
        )

    def read(self, body: str) -> None:
        found = re.search(r'id="overview-body" hx-get="[^"]*stamp=([^"&]+)"', body)
        self.stamp = found.group(1) if found else ""
        self.workloads = re.findall(r'href="(/clusters/[^"]+/workloads/[^"]+/)"', body) or self.workloads

    @task(5)
    def poll_overview(self) -> None:
        params = {"stamp": self.stamp} if self.stamp else {}
        with self.client.get("/", params=params, headers=HTMX, name="/ (poll)", catch_response=True) as response:
            if response.status_code == 204:
                response.success()
            elif response.status_code == 200 and 'id="overview-body"' in response.text:
                self.read(response.text)
                response.success()
            else:
                response.failure(f"status {response.status_code}")

    @task(1)
    def open_workload(self) -> None:
        if not self.workloads:
            return
        page = random.choice(self.workloads)
        with self.client.get(page, name="/clusters/.../workloads/...", catch_response=True) as response:
            if response.status_code == 200 and "/login/" not in response.url:
                response.success()
            else:
                response.failure(f"status {response.status_code} at {response.url}")
