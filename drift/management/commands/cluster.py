from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError

from drift.clusters import (
    ClusterRegistrationError,
    generate_audit_token,
    read_token_file,
    register_cluster,
    remove_cluster,
    same_api_server,
    set_audit_token,
)
from drift.models import Cluster


class Command(BaseCommand):
    help = "Register, list or remove the Kubernetes clusters Driftwatch watches."

    def add_arguments(self, parser: ArgumentParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        add = actions.add_parser("add", help="register a cluster after checking that its API server answers")
        add.add_argument("name")
        add.add_argument("--kubeconfig", default="", help="path of the kubeconfig file")
        add.add_argument("--context", default="", help="context in the kubeconfig (default: its current context)")
        add.add_argument("--in-cluster", action="store_true", help="use the service account of this pod")
        add.add_argument(
            "--read-only",
            action="store_true",
            help="no exec into pods, no rollouts (RBAC without pods/exec and patch): verdicts are inferred",
        )
        add.add_argument(
            "--namespace",
            action="append",
            default=[],
            dest="namespaces",
            help="read only this namespace (repeatable; RBAC with a Role per namespace, no cluster-wide list)",
        )
        add.add_argument("--actor", default="driftwatch", help="who to record in the audit history")
        add.add_argument(
            "--audit-token-file",
            default="",
            help="accept the API server's audit events at /kubernetes-audit/NAME/ with the bearer token in this file",
        )
        add.add_argument(
            "--generate-audit-token",
            action="store_true",
            help="accept audit events with a strong token Driftwatch generates and prints (only this once)",
        )
        token = actions.add_parser("set-audit-token", help="set (or with --none remove) the audit webhook token")
        token.add_argument("name")
        token.add_argument("--token-file", default="")
        token.add_argument("--none", action="store_true", help="accept no audit events for this cluster")
        token.add_argument(
            "--generate", action="store_true", help="generate a strong token, set it, and print it (only this once)"
        )
        token.add_argument("--actor", default="driftwatch")
        actions.add_parser("list", help="list registered clusters")
        remove = actions.add_parser("remove", help="forget a cluster and everything recorded about it")
        remove.add_argument("name")
        remove.add_argument("--actor", default="driftwatch")

    def handle(self, *args: object, **options: object) -> None:
        try:
            if options["action"] == "add":
                if options["audit_token_file"] and options["generate_audit_token"]:
                    raise CommandError("give --audit-token-file PATH or --generate-audit-token, not both")
                token = ""
                if options["generate_audit_token"]:
                    token = generate_audit_token()
                elif options["audit_token_file"]:
                    token = read_token_file(str(options["audit_token_file"]))
                cluster, version = register_cluster(
                    str(options["name"]),
                    kubeconfig_path=str(options["kubeconfig"]),
                    context=str(options["context"]),
                    in_cluster=bool(options["in_cluster"]),
                    read_only=bool(options["read_only"]),
                    namespaces=[str(namespace) for namespace in options["namespaces"]],  # type: ignore[attr-defined]
                    actor=str(options["actor"]),
                    audit_token=token,
                )
                self.stdout.write(
                    f"added cluster {cluster.name} (Kubernetes {version}, API server {cluster.api_server})"
                )
                for earlier in same_api_server(cluster):
                    self.stderr.write(
                        f"warning: {cluster.name} is the API server {cluster.api_server} that is already registered as "
                        f"{earlier.name} (since {earlier.created_at:%Y-%m-%d %H:%M %Z}): its pods will be counted "
                        f"twice; remove one with: manage.py cluster remove NAME"
                    )
                if options["generate_audit_token"]:
                    self._show_token(token)
            elif options["action"] == "set-audit-token":
                if sum(bool(options[given]) for given in ("none", "token_file", "generate")) != 1:
                    raise CommandError("give one of --token-file PATH, --generate or --none")
                if options["generate"]:
                    token = generate_audit_token()
                else:
                    token = "" if options["none"] else read_token_file(str(options["token_file"]))
                set_audit_token(str(options["name"]), token, actor=str(options["actor"]))
                self.stdout.write(f"cluster {options['name']}: audit webhook token {'set' if token else 'removed'}")
                if options["generate"]:
                    self._show_token(token)
            elif options["action"] == "remove":
                remove_cluster(str(options["name"]), actor=str(options["actor"]))
                self.stdout.write(f"removed cluster {options['name']}")
            else:
                for cluster in Cluster.objects.all():
                    self.stdout.write(f"{cluster.name}\t{cluster.api_server or '-'}\t{cluster.credentials_label()}")
        except ClusterRegistrationError as error:
            raise CommandError(str(error)) from None

    def _show_token(self, token: str) -> None:
        self.stdout.write("the token (for the API server's audit webhook file; it is not shown again):")
        self.stdout.write(token)
