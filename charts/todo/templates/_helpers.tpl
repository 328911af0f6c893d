{{/*
Names. The full name is the release name, suffixed with the chart name unless it already
contains it (`helm install todo` gives `todo`, `helm install prod` gives `prod-todo`).
*/}}
{{- define "todo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "todo.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "todo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; pass (dict "root" $ "component" "mcp-server"). */}}
{{- define "todo.labels" -}}
helm.sh/chart: {{ include "todo.chart" .root }}
{{ include "todo.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: {{ include "todo.name" .root }}
{{- end }}

{{/* Selector labels; stable across upgrades. */}}
{{- define "todo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "todo.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{/* A podSelector of both apps' pods (their sidecars hold the Redis password). */}}
{{- define "todo.appPodsSelector" -}}
matchLabels:
  {{- include "todo.selectorLabels" (dict "root" .) | nindent 2 }}
matchExpressions:
  - key: app.kubernetes.io/component
    operator: In
    values: ["mcp-server", "scheduler"]
{{- end }}

{{- define "todo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "todo.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "todo.schedulerServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-scheduler" (include "todo.fullname" . | trunc 53 | trimSuffix "-")) .Values.serviceAccount.schedulerName }}
{{- else }}
{{- default "default" .Values.serviceAccount.schedulerName }}
{{- end }}
{{- end }}

{{/* Object names. */}}
{{- define "todo.mcpServer.fullname" -}}{{ include "todo.fullname" . | trunc 52 | trimSuffix "-" }}-mcp-server{{- end }}
{{- define "todo.scheduler.fullname" -}}{{ include "todo.fullname" . | trunc 53 | trimSuffix "-" }}-scheduler{{- end }}
{{- define "todo.redis.fullname" -}}{{ include "todo.fullname" . | trunc 57 | trimSuffix "-" }}-redis{{- end }}
{{- define "todo.postgresql.fullname" -}}{{ include "todo.fullname" . | trunc 52 | trimSuffix "-" }}-postgresql{{- end }}
{{- define "todo.daprConfig" -}}{{ include "todo.fullname" . | trunc 58 | trimSuffix "-" }}-dapr{{- end }}
{{- define "todo.appTokenSecret" -}}{{ include "todo.fullname" . | trunc 47 | trimSuffix "-" }}-dapr-app-token{{- end }}
{{- define "todo.apiTokenSecret" -}}{{ include "todo.fullname" . | trunc 47 | trimSuffix "-" }}-dapr-api-token{{- end }}

{{/* The app Secret: yours (secrets.existingSecret) or the chart's. */}}
{{- define "todo.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- include "todo.fullname" . | trunc 55 | trimSuffix "-" }}-secrets
{{- end }}
{{- end }}

{{/* Image reference; the tag defaults to the chart's appVersion. */}}
{{- define "todo.image" -}}
{{- $tag := .image.tag | default .root.Chart.AppVersion }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}

{{/* Redis "host:port" for the Dapr components. */}}
{{- define "todo.redisHost" -}}
{{- if .Values.redis.enabled }}
{{- printf "%s.%s.svc.%s:6379" (include "todo.redis.fullname" .) .Release.Namespace .Values.clusterDomain }}
{{- else }}
{{- required "redis.host (host:port of your Redis) is required when redis.enabled is false" .Values.redis.host }}
{{- end }}
{{- end }}

{{/*
The Secret with the Redis password: redis.existingSecret, else the chart's own with the in-chart
Redis; empty for an external Redis without a password.
*/}}
{{- define "todo.redisSecretName" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecret }}
{{- else if .Values.redis.enabled }}
{{- include "todo.redis.fullname" . }}
{{- end }}
{{- end }}

{{- define "todo.redisSecretKey" -}}
{{- if .Values.redis.existingSecret }}
{{- .Values.redis.existingSecretPasswordKey }}
{{- else }}
{{- "redis-password" }}
{{- end }}
{{- end }}

{{/* Metadata shared by the Redis-backed components: address, password, TLS. */}}
{{- define "todo.redisMetadata" -}}
- name: redisHost
  value: {{ include "todo.redisHost" . | quote }}
{{- with include "todo.redisSecretName" . }}
# No auth.secretStore, so the `kubernetes` store: the Dapr operator reads the Secret
# itself and hands the sidecars the value; no app's ServiceAccount needs access to it.
- name: redisPassword
  secretKeyRef:
    name: {{ . }}
    key: {{ include "todo.redisSecretKey" $ }}
{{- end }}
{{- if and (not .Values.redis.enabled) .Values.redis.enableTLS }}
- name: enableTLS
  value: "true"
{{- end }}
{{- end }}

{{/*
Host headers the MCP server accepts: the Service's in-cluster names, localhost (for
`kubectl port-forward`), the ingress host, the resource URL's host (mcpServer.auth.resourceUrl,
where clients reach /mcp) and mcpServer.allowedHosts. A name without a port matches any port, so
each name covers `name` and `name:8080`.
*/}}
{{- define "todo.allowedHosts" -}}
{{- $svc := include "todo.mcpServer.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- $hosts := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) "localhost" "127.0.0.1" "::1" }}
{{- if and .Values.mcpServer.ingress.enabled .Values.mcpServer.ingress.host }}
{{- $hosts = append $hosts .Values.mcpServer.ingress.host }}
{{- end }}
{{- if and .Values.mcpServer.auth.issuer .Values.mcpServer.auth.resourceUrl }}
{{- $hosts = append $hosts (urlParse .Values.mcpServer.auth.resourceUrl).host }}
{{- end }}
{{- $hosts = concat $hosts .Values.mcpServer.allowedHosts }}
{{- $hosts | uniq | join "," }}
{{- end }}

{{/*
Identity-provider mode (mcpServer.auth.issuer): the canonical URI of /mcp, the audience tokens
must name. mcpServer.auth.resourceUrl, else the ingress host's (https with its TLS secret).
*/}}
{{- define "todo.resourceUrl" -}}
{{- $ing := .Values.mcpServer.ingress }}
{{- if .Values.mcpServer.auth.resourceUrl }}
{{- .Values.mcpServer.auth.resourceUrl }}
{{- else if and $ing.enabled $ing.host }}
{{- printf "%s://%s/mcp" (ternary "https" "http" (not (empty $ing.tlsSecretName))) $ing.host }}
{{- else }}
{{- required "mcpServer.auth.resourceUrl (the URL clients reach /mcp at, e.g. https://todo.example.com/mcp: the audience tokens must name) is required with mcpServer.auth.issuer unless mcpServer.ingress is enabled with a host" "" }}
{{- end }}
{{- end }}

{{/*
The paths todo-mcp serves its Protected Resource Metadata at (RFC 9728), unauthenticated: the
well-known path, and the same with the resource URL's path appended. A JSON list.
*/}}
{{- define "todo.resourceMetadataPaths" -}}
{{- $base := "/.well-known/oauth-protected-resource" }}
{{- $suffix := (urlParse (include "todo.resourceUrl" .)).path | trimSuffix "/" }}
{{- $paths := list $base }}
{{- if $suffix }}
{{- $paths = append $paths (printf "%s%s" $base $suffix) }}
{{- end }}
{{- toJson $paths }}
{{- end }}

{{/* Where clients read the Protected Resource Metadata (the URL a 401's challenge names). */}}
{{- define "todo.resourceMetadataUrl" -}}
{{- $u := urlParse (include "todo.resourceUrl" .) }}
{{- printf "%s://%s/.well-known/oauth-protected-resource%s" $u.scheme $u.host ($u.path | trimSuffix "/") }}
{{- end }}

{{/*
Fails rendering on an issuer todo-mcp would refuse at start: plain http to another machine
without mcpServer.auth.allowHttpIssuer (loopback names are accepted, as by the server).
*/}}
{{- define "todo.checkIssuer" -}}
{{- $a := .Values.mcpServer.auth }}
{{- if and $a.issuer (hasPrefix "http://" $a.issuer) (not $a.allowHttpIssuer) }}
{{- $host := regexReplaceAll `\]?(:[0-9]*)?$` ((urlParse $a.issuer).host | trimPrefix "[") "" }}
{{- if not (or (eq $host "localhost") (hasPrefix "127." $host) (eq $host "::1")) }}
{{- fail (printf "mcpServer.auth.issuer %q is plain http on another machine: tokens and keys would travel unprotected. Use https, or set mcpServer.auth.allowHttpIssuer=true on a private network" $a.issuer) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Dapr sidecar annotations; pass (dict "root" $ "appId" ... "appPort" ...). */}}
{{- define "todo.daprAnnotations" -}}
{{- $v := .root.Values.dapr -}}
dapr.io/enabled: "true"
dapr.io/app-id: {{ .appId | quote }}
dapr.io/app-port: {{ .appPort | quote }}
dapr.io/app-protocol: "http"
dapr.io/enable-api-logging: {{ $v.enableApiLogging | toString | quote }}
dapr.io/log-level: {{ $v.logLevel | quote }}
dapr.io/config: {{ include "todo.daprConfig" .root | quote }}
{{- if $v.appToken.enabled }}
dapr.io/app-token-secret: {{ include "todo.appTokenSecret" .root | quote }}
{{- end }}
{{- if $v.apiToken.enabled }}
dapr.io/api-token-secret: {{ include "todo.apiTokenSecret" .root | quote }}
{{- end }}
# Only the chart's `secretstore` component reads secrets, not Dapr's built-in `kubernetes` store.
dapr.io/disable-builtin-k8s-secret-store: "true"
{{- with $v.sidecar.cpuRequest }}
dapr.io/sidecar-cpu-request: {{ . | quote }}
{{- end }}
{{- with $v.sidecar.memoryRequest }}
dapr.io/sidecar-memory-request: {{ . | quote }}
{{- end }}
{{- with $v.sidecar.cpuLimit }}
dapr.io/sidecar-cpu-limit: {{ . | quote }}
{{- end }}
{{- with $v.sidecar.memoryLimit }}
dapr.io/sidecar-memory-limit: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
Environment both apps share: the tokens the injector gives the sidecar, which it does not give
the app container (the same Secrets, key `token`).
*/}}
{{- define "todo.daprTokenEnv" -}}
{{- if .Values.dapr.appToken.enabled }}
- name: APP_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "todo.appTokenSecret" . }}
      key: token
{{- else }}
{{- /* The apps refuse to start beside a sidecar without the token unless told, as here. */}}
- name: TODO_INSECURE_NO_APP_TOKEN
  value: "true"
{{- end }}
{{- if .Values.dapr.apiToken.enabled }}
- name: DAPR_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "todo.apiTokenSecret" . }}
      key: token
{{- end }}
{{- end }}

{{/*
A value kept across upgrades: the existing Secret's key if the release already made it, else
`default`. (`lookup` sees nothing under `helm template`, so that renders fresh values.)
Pass (dict "root" $ "secret" name "key" key "default" value).
*/}}
{{- define "todo.keptSecretValue" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .secret }}
{{- $data := dig "data" (dict) ($existing | default dict) }}
{{- if hasKey $data .key }}
{{- index $data .key | b64dec }}
{{- else }}
{{- .default }}
{{- end }}
{{- end }}

{{/* The pod annotations and container port of the metrics endpoint, when enabled. */}}
{{- define "todo.metricsAnnotations" -}}
{{- if .Values.metrics.enabled }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{- define "todo.metricsEnv" -}}
{{- if .Values.metrics.enabled }}
- name: TODO_METRICS_LISTEN
  value: "0.0.0.0:{{ .Values.metrics.port }}"
{{- end }}
{{- end }}

{{/* Where both apps export their spans, when set. */}}
{{- define "todo.tracesEnv" -}}
{{- with .Values.traces.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{- define "todo.metricsPort" -}}
{{- if .Values.metrics.enabled }}
- name: metrics
  containerPort: {{ .Values.metrics.port }}
  protocol: TCP
{{- end }}
{{- end }}
