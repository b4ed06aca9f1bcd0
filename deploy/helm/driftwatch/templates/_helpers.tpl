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

{{- define "driftwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "driftwatch.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
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

{{/* The RBAC rules, each for the code that calls it (see the README's table). "watch" on ConfigMaps and Secrets
only for the watcher (drift/snapshot/watch.py watches nothing else). */}}
{{- define "driftwatch.namespacedRules" -}}
{{- $read := list "list" -}}
{{- if .Values.watcher.enabled }}{{ $read = list "list" "watch" }}{{ end -}}
# drift/snapshot/listing.py read_cluster (LIST); drift/rollout/plan.py _source_state (GET, for the config hash)
- apiGroups: [""]
  resources: [configmaps, secrets]
  verbs: {{ if .Values.rbac.readOnly }}{{ toJson $read }}{{ else }}{{ toJson (concat (list "get") $read) }}{{ end }}
# drift/snapshot/listing.py read_cluster; drift/rollout/plan.py _pod_names (LIST with a label selector)
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# drift/snapshot/listing.py read_cluster: each pod's owner
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [list]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list]
{{- if not .Values.rbac.readOnly }}
# drift/snapshot/probing.py run_probes -> drift/kube/exec.py run_exec: the exec websocket is a GET, which the
# API server authorises as get (create alone is refused to it; kubectl's exec passes with create only)
- apiGroups: [""]
  resources: [pods/exec]
  verbs: [create, get]
# drift/rollout/plan.py plan (GET, dry-run PATCH), execute.py execute (PATCH, GET), follow.py (GET)
- apiGroups: [apps]
  resources: [deployments, statefulsets, daemonsets]
  verbs: [get, patch]
{{- end }}
{{- end -}}

{{- define "driftwatch.env" -}}
- name: SECRET_KEY
  valueFrom: {secretKeyRef: {name: {{ include "driftwatch.secretName" . }}, key: SECRET_KEY}}
- name: DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ include "driftwatch.secretName" . }}, key: DATABASE_URL}}
- name: REDIS_URL
  valueFrom: {secretKeyRef: {name: {{ include "driftwatch.secretName" . }}, key: REDIS_URL}}
- name: ALLOWED_HOSTS
  value: {{ .Values.settings.allowedHosts | quote }}
- name: HTTPS
  value: {{ .Values.settings.https | quote }}
- name: BEHIND_PROXY
  value: {{ .Values.settings.behindProxy | quote }}
- name: TIME_ZONE
  value: {{ .Values.settings.timeZone | quote }}
{{- with .Values.settings.celeryQueue }}
- name: DRIFTWATCH_CELERY_QUEUE
  value: {{ . | quote }}
{{- end }}
{{- with .Values.kubernetesApi.host }}
- name: KUBERNETES_SERVICE_HOST
  value: {{ . | quote }}
{{- end }}
{{- with .Values.kubernetesApi.port }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ . | quote }}
{{- end }}
{{- with .Values.settings.extraEnv }}
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

{{/* Container fields every Driftwatch container shares. */}}
{{- define "driftwatch.container" -}}
image: {{ include "driftwatch.image" . }}
imagePullPolicy: {{ .Values.image.pullPolicy }}
securityContext: {{- toYaml .Values.securityContext | nindent 2 }}
env: {{- include "driftwatch.env" . | nindent 2 }}
volumeMounts:
- {name: tmp, mountPath: /tmp}
{{- end -}}
