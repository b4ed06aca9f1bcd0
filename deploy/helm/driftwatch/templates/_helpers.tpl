{{- define "driftwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "driftwatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "driftwatch.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "driftwatch.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "driftwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "driftwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "driftwatch.labels" -}}
{{ include "driftwatch.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* The service account of one process (`dict "root" . "process" "web"`): NAME-web, NAME-worker, NAME-watcher,
NAME-register, where NAME is serviceAccount.name or the release's full name. */}}
{{- define "driftwatch.serviceAccountName" -}}
{{- $root := .root -}}
{{- if $root.Values.serviceAccount.create -}}
{{- printf "%s-%s" (default (include "driftwatch.fullname" $root) $root.Values.serviceAccount.name) .process -}}
{{- else -}}
{{- printf "%s-%s" (required "serviceAccount.name is required when serviceAccount.create is false" $root.Values.serviceAccount.name) .process -}}
{{- end -}}
{{- end -}}

{{- define "driftwatch.secretName" -}}
{{- default (include "driftwatch.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "driftwatch.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "driftwatch.checks" -}}
{{- if not (has .Values.rbac.mode (list "cluster" "namespaced")) -}}
{{- fail "rbac.mode must be cluster or namespaced" -}}
{{- end -}}
{{- if and (eq .Values.rbac.mode "namespaced") (empty .Values.rbac.namespaces) -}}
{{- fail "rbac.mode=namespaced needs rbac.namespaces (the namespaces Driftwatch may read)" -}}
{{- end -}}
{{- if and (not .Values.secrets.existingSecret) (not (and .Values.secrets.secretKey .Values.secrets.databaseUrl .Values.secrets.redisUrl)) -}}
{{- fail "set secrets.existingSecret, or all of secrets.secretKey, secrets.databaseUrl and secrets.redisUrl" -}}
{{- end -}}
{{- end -}}

{{/* The processes that call the Kubernetes API, each with an account of its own; a token is mounted only where a
process has rules (the register Job asks for /version only, which every authenticated account may read). */}}
{{- define "driftwatch.accounts" -}}
{{- $accounts := list "web" "worker" "register" -}}
{{- if .Values.watcher.enabled }}{{ $accounts = append $accounts "watcher" }}{{ end -}}
{{- toJson $accounts -}}
{{- end -}}

{{/* The RBAC rules of each process, one define per account, each rule naming the code that calls it (the README's
table). A process's namespaced rules become a Role in each of rbac.namespaces or, cluster-wide, part of its
ClusterRole; "driftwatch.clusterRules.PROCESS" adds what exists cluster-wide only. A new call is one rule here. */}}

{{/* What a rollout calls. The web process runs it inside the request (dashboard/views/rollouts.py); the worker
runs the ones `track_rollouts` starts (a bulk rollout's later groups) and follows them. */}}
{{- define "driftwatch.rules.rollout" -}}
{{- if not .Values.rbac.readOnly }}
# drift/rollout/plan.py _source_state: GET each ConfigMap and Secret the pod template reads, for the config hash
- apiGroups: [""]
  resources: [configmaps, secrets]
  verbs: [get]
# drift/rollout/plan.py _pod_names: LIST with the workload's label selector
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# drift/rollout/plan.py plan (GET, dry-run PATCH), execute.py execute (PATCH, GET), follow.py (GET)
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  verbs: [get, patch]
# drift/rollout/evict.py: "Restart the stale pods only" GETs the workload (a bare ReplicaSet too, for its
# selector) and POSTs policy/v1 Evictions of its stale pods (a dry run when planning)
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get]
- apiGroups: [""]
  resources: [pods/eviction]
  verbs: [create]
# drift/rollout/kinds.py ArgoRollout: an Argo Rollout, as the apps kinds above (plan GET and dry-run PATCH, execute.py
# PATCH of spec.restartAt or its template, follow.py GET). The snapshot reads it through its ReplicaSets'
# ownerReferences: no list or watch. A rule for a resource whose CRD is not installed is harmless.
- apiGroups: [argoproj.io]
  resources: [rollouts]
  verbs: [get, patch]
{{- end }}
{{- end -}}

{{/* The web process (gunicorn): rollouts, and restoring a ConfigMap version. Read-only: nothing, and no token. */}}
{{- define "driftwatch.rules.web" -}}
{{ include "driftwatch.rules.rollout" . }}
{{- if not .Values.rbac.readOnly }}
# drift/restore.py preview (GET, dry-run PUT) and restore (GET, PUT with the preview's resourceVersion)
- apiGroups: [""]
  resources: [configmaps]
  verbs: [update]
# drift/rollout/run_now.py: Run now GETs the CronJob and POSTs a Job from its jobTemplate (a dry run when planning)
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [get]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create]
{{- end }}
{{- end -}}
{{- define "driftwatch.clusterRules.web" -}}{{- end -}}

{{/* The Celery worker: the snapshot, its exec probes, and rollouts. */}}
{{- define "driftwatch.rules.worker" -}}
# drift/snapshot/listing.py read_cluster: paginated LIST; each pod's owner (ReplicaSets, Jobs)
- apiGroups: [""]
  resources: [configmaps, secrets, pods]
  verbs: [list]
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [list]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list]
# drift/snapshot/listing.py _read_schedules: each CronJob's schedule, for its next run (optional: skipped on a 403)
- apiGroups: [batch]
  resources: [cronjobs]
  verbs: [list]
{{- if not .Values.rbac.readOnly }}
# drift/snapshot/probing.py run_probes -> drift/kube/exec.py run_exec: the exec websocket is a GET, which the
# API server authorises as get (create alone is refused to it; kubectl's exec passes with create only)
- apiGroups: [""]
  resources: [pods/exec]
  verbs: [create, get]
{{- end }}
{{- include "driftwatch.rules.rollout" . }}
{{- end -}}
{{- define "driftwatch.clusterRules.worker" -}}
# drift/snapshot/listing.py: simulated (kwok) nodes, and the per-namespace fallback when a LIST is forbidden
- apiGroups: [""]
  resources: [nodes, namespaces]
  verbs: [list]
{{- end -}}

{{/* The watcher (drift/snapshot/watch.py, `manage.py watch`): LIST, then WATCH from its resourceVersion. */}}
{{- define "driftwatch.rules.watcher" -}}
# drift/snapshot/watch.py SourceWatch, drift/snapshot/podwatch.py PodWatch (its LIST of the pods' owners, and a GET
# of an owner created after it)
- apiGroups: [""]
  resources: [configmaps, secrets, pods]
  verbs: [list, watch]
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [list, get]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, get]
{{- if not .Values.rbac.readOnly }}
# drift/snapshot/podwatch.py ProbePlanner -> drift/kube/exec.py run_exec (a GET of the exec websocket, as the worker's)
- apiGroups: [""]
  resources: [pods/exec]
  verbs: [create, get]
{{- end }}
{{- end -}}
{{- define "driftwatch.clusterRules.watcher" -}}
# drift/snapshot/podwatch.py: simulated (kwok) nodes, listed and each new one read
- apiGroups: [""]
  resources: [nodes]
  verbs: [list, get]
{{- end -}}

{{/* The register Job: /version only (open to every authenticated account). */}}
{{- define "driftwatch.rules.register" -}}{{- end -}}
{{- define "driftwatch.clusterRules.register" -}}{{- end -}}

{{/* Whether a process has any rule in the chart's mode: its pods mount a token only then. */}}
{{- define "driftwatch.callsTheApi" -}}
{{- $rules := include (printf "driftwatch.rules.%s" .process) .root | fromYamlArray -}}
{{- $cluster := list -}}
{{- if eq .root.Values.rbac.mode "cluster" }}{{ $cluster = include (printf "driftwatch.clusterRules.%s" .process) .root | fromYamlArray }}{{ end -}}
{{- if or $rules $cluster (eq .process "register") }}true{{ end -}}
{{- end -}}

{{/* serviceAccountName and automountServiceAccountToken of one process's pods (`dict "root" . "process" "web"`). */}}
{{- define "driftwatch.podAccount" -}}
serviceAccountName: {{ include "driftwatch.serviceAccountName" . }}
automountServiceAccountToken: {{ include "driftwatch.callsTheApi" . | eq "true" }}
{{- end -}}

{{/* The environment of every container (`dict "root" . "set" (dict NAME VALUE)`: plain settings of its own, which
replace the chart-wide ones of the same name). */}}
{{- define "driftwatch.env" -}}
{{- $root := .root -}}
{{- $plain := dict "ALLOWED_HOSTS" $root.Values.settings.allowedHosts "HTTPS" (toString $root.Values.settings.https) "BEHIND_PROXY" (toString $root.Values.settings.behindProxy) "TIME_ZONE" $root.Values.settings.timeZone -}}
{{- with $root.Values.settings.celeryQueue }}{{ $_ := set $plain "DRIFTWATCH_CELERY_QUEUE" . }}{{ end -}}
{{- with $root.Values.kubernetesApi.host }}{{ $_ := set $plain "KUBERNETES_SERVICE_HOST" (toString .) }}{{ end -}}
{{- with $root.Values.kubernetesApi.port }}{{ $_ := set $plain "KUBERNETES_SERVICE_PORT" (toString .) }}{{ end -}}
{{- $plain = merge (deepCopy (.set | default dict)) $plain -}}
- name: SECRET_KEY
  valueFrom: {secretKeyRef: {name: {{ include "driftwatch.secretName" $root }}, key: SECRET_KEY}}
- name: DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ include "driftwatch.secretName" $root }}, key: DATABASE_URL}}
- name: REDIS_URL
  valueFrom: {secretKeyRef: {name: {{ include "driftwatch.secretName" $root }}, key: REDIS_URL}}
{{- range $name, $value := $plain }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- with $root.Values.settings.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pod-level fields every Driftwatch pod shares (the service account is added by those that use the API). */}}
{{- define "driftwatch.podSpec" -}}
securityContext: {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- if .Values.hostNetwork }}
hostNetwork: true
dnsPolicy: Default
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
- name: tmp
  emptyDir: {sizeLimit: 256Mi}
{{- end -}}

{{/* Container fields every Driftwatch container shares (`dict "root" . "set" (dict ...)`, see driftwatch.env). */}}
{{- define "driftwatch.container" -}}
image: {{ include "driftwatch.image" .root }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
securityContext: {{- toYaml .root.Values.securityContext | nindent 2 }}
env: {{- include "driftwatch.env" . | nindent 2 }}
volumeMounts:
- {name: tmp, mountPath: /tmp}
{{- end -}}

{{/* What the ingress publishes: the dashboard's paths (dashboard/urls.py dashboard_urls, and /static/ of whitenoise),
one by one, so that whatever is not listed stays inside the cluster: /kubernetes-audit/ (the audit receiver has its
own Service), /healthz and /readyz, and unless asked /admin/ and /metrics. tests/test_helm_chart.py checks every
URL of the app is on one side. */}}
{{- define "driftwatch.publicPaths" -}}
- {path: /, pathType: Exact}
{{- range list "/source-names/" "/clusters/" "/workloads/" "/rollouts/" "/notifications/" "/audit/" "/login/" "/logout/" "/sso/" "/static/" }}
- {path: {{ . }}, pathType: Prefix}
{{- end }}
- {path: /audit.csv, pathType: Exact}
{{- if .Values.ingress.publishAdmin }}
- {path: /admin/, pathType: Prefix}
{{- end }}
{{- if .Values.ingress.publishMetrics }}
- {path: /metrics, pathType: Exact}
{{- end }}
{{- end -}}
