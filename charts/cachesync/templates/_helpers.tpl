{{/*
Every helper takes this chart's own context: `.` inside the chart, or
`.Subcharts.cachesync` from an application chart that depends on it.
*/}}

{{/* The chart name. */}}
{{- define "cachesync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The fully qualified name of the release's resources. */}}
{{- define "cachesync.fullname" -}}
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

{{/* Chart name and version for the helm.sh/chart label. */}}
{{- define "cachesync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "cachesync.labels" -}}
helm.sh/chart: {{ include "cachesync.chart" . }}
{{ include "cachesync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cachesync
{{- end }}

{{/* Labels that select the standalone pods. */}}
{{- define "cachesync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cachesync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels that select the pods serving /metrics: the standalone pods, or the app pods with the sidecar. */}}
{{- define "cachesync.podSelector" -}}
{{- if eq .Values.mode "sidecar" }}
{{- if .Values.sidecar.podSelector }}
{{- toYaml .Values.sidecar.podSelector }}
{{- else }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
{{- else }}
{{- include "cachesync.selectorLabels" . }}
{{- end }}
{{- end }}

{{/* The service account of the standalone pods. */}}
{{- define "cachesync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cachesync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding MONGODB_URI and REDIS_URL. */}}
{{- define "cachesync.secretName" -}}
{{- default (include "cachesync.fullname" .) .Values.existingSecret }}
{{- end }}

{{/* The ConfigMap holding cachesync.yaml. */}}
{{- define "cachesync.configMapName" -}}
{{- printf "%s-config" (include "cachesync.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The image reference. */}}
{{- define "cachesync.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* "host:port" of (dict "host" <host> "port" <port>), an IPv6 host in brackets. */}}
{{- define "cachesync.hostPort" -}}
{{- if contains ":" .host }}[{{ .host }}]{{ else }}{{ .host }}{{ end }}:{{ int .port }}
{{- end }}

{{/* The read-through API's bind address: api.listenAddress, else loopback in sidecar mode, all interfaces otherwise. */}}
{{- define "cachesync.apiHost" -}}
{{- .Values.api.listenAddress | default (ternary "127.0.0.1" "0.0.0.0" (eq .Values.mode "sidecar")) }}
{{- end }}

{{/* "true" when the read-through API listens on loopback only (nothing outside the pod reaches it), else empty. */}}
{{- define "cachesync.apiOnLoopback" -}}
{{- if regexMatch "^(127\\.|::1$|localhost$)" (include "cachesync.apiHost" .) }}true{{ end }}
{{- end }}

{{/*
The cachesync.yaml file: values.config plus the connection strings, the listen addresses, the collections, and the
redis.* and api.* values (file paths of the Secrets that "cachesync.secretMounts" mounts, Sentinel settings).
*/}}
{{- define "cachesync.configYaml" -}}
{{- $collections := dict }}
{{- range .Values.collections }}
{{- if hasKey $collections .name }}
{{- fail (printf "collections: %q is listed twice" .name) }}
{{- end }}
{{- $_ := set $collections .name (omit . "name") }}
{{- end }}
{{- $redis := dict "url" "${REDIS_URL}" }}
{{- if .Values.redis.passwordSecret.name }}
{{- $_ := set $redis "passwordFile" "/etc/cachesync/redis-password/password" }}
{{- end }}
{{- with .Values.redis.tls }}
{{- if .enabled }}
{{- $tls := dict }}
{{- if and .existingSecret .secretKeys.caCert }}
{{- $_ := set $tls "caFile" "/etc/cachesync/redis-tls/ca.crt" }}
{{- end }}
{{- if and .existingSecret .secretKeys.clientCert }}
{{- $_ := set $tls "certFile" "/etc/cachesync/redis-tls/tls.crt" }}
{{- $_ := set $tls "keyFile" "/etc/cachesync/redis-tls/tls.key" }}
{{- end }}
{{- with .serverName }}
{{- $_ := set $tls "serverName" . }}
{{- end }}
{{- if .insecureSkipVerify }}
{{- $_ := set $tls "insecureSkipVerify" true }}
{{- end }}
{{- $_ := set $redis "tls" $tls }}
{{- end }}
{{- end }}
{{- with .Values.redis.sentinel }}
{{- if .enabled }}
{{- $sentinel := dict "masterName" .masterName "nodes" .nodes }}
{{- with .username }}
{{- $_ := set $sentinel "username" . }}
{{- end }}
{{- if .passwordSecret.name }}
{{- $_ := set $sentinel "password" "${REDIS_SENTINEL_PASSWORD}" }}
{{- end }}
{{- $_ := set $redis "sentinel" $sentinel }}
{{- end }}
{{- end }}
{{- if eq (int .Values.api.port) (int .Values.metrics.port) }}
{{- fail "api.port must differ from metrics.port: the read-through API has a port of its own" }}
{{- end }}
{{- $api := dict "listen" (include "cachesync.hostPort" (dict "host" (include "cachesync.apiHost" .) "port" .Values.api.port)) }}
{{- if .Values.api.token.existingSecret }}
{{- $_ := set $api "tokenFile" "/etc/cachesync/api-token/token" }}
{{- else if not (or .Values.api.allowAnonymous (and (eq .Values.mode "sidecar") (include "cachesync.apiOnLoopback" .))) }}
{{- fail (printf "api.token.existingSecret is empty: the read-through API (/v1/cache) would answer anyone who reaches %s (%s mode). Set api.token.existingSecret to a Secret holding the bearer token, or api.allowAnonymous: true to serve it without one" $api.listen .Values.mode) }}
{{- end }}
{{- $set := dict
  "mongodb" (dict "uri" "${MONGODB_URI}")
  "redis" $redis
  "http" (dict "listen" (include "cachesync.hostPort" (dict "host" .Values.listenAddress "port" .Values.metrics.port)) "api" $api)
  "collections" $collections }}
{{- /* The binary pastes an environment variable's value into the YAML text as it is: the sentinel password is
single-quoted so that any character but ' and a line break stays part of it (toYaml leaves ${...} unquoted). */}}
{{- toYaml (mergeOverwrite (deepCopy .Values.config) $set) | replace ": ${REDIS_SENTINEL_PASSWORD}" ": '${REDIS_SENTINEL_PASSWORD}'" }}
{{- end }}

{{/*
The Secrets mounted read-only into the cachesync container for the redis.*, mongodb.tls and api.token values, as a YAML list
of {name, mountPath, secret} (secret: the volume's secret source). "cachesync.configYaml" names the files.
*/}}
{{- define "cachesync.secretMounts" -}}
{{- with .Values.redis.passwordSecret }}
{{- if .name }}
- name: cachesync-redis-password
  mountPath: /etc/cachesync/redis-password
  secret:
    secretName: {{ .name | quote }}
    items:
      - key: {{ .key | quote }}
        path: password
{{- end }}
{{- end }}
{{- with .Values.redis.tls }}
{{- if and .enabled .existingSecret }}
- name: cachesync-redis-tls
  mountPath: /etc/cachesync/redis-tls
  secret:
    secretName: {{ .existingSecret | quote }}
    items:
      {{- with .secretKeys.caCert }}
      - key: {{ . | quote }}
        path: ca.crt
      {{- end }}
      {{- if .secretKeys.clientCert }}
      - key: {{ .secretKeys.clientCert | quote }}
        path: tls.crt
      - key: {{ .secretKeys.clientKey | quote }}
        path: tls.key
      {{- end }}
{{- end }}
{{- end }}
{{- with .Values.mongodb.tls.existingSecret }}
- name: cachesync-mongodb-tls
  mountPath: /etc/cachesync/mongodb-tls
  secret:
    secretName: {{ . | quote }}
{{- end }}
{{- with .Values.api.token }}
{{- if .existingSecret }}
- name: cachesync-api-token
  mountPath: /etc/cachesync/api-token
  secret:
    secretName: {{ .existingSecret | quote }}
    items:
      - key: {{ .key | quote }}
        path: token
{{- end }}
{{- end }}
{{- end }}

{{/* Pod annotations that roll the pods when the config or the chart-made Secret changes. */}}
{{- define "cachesync.podAnnotations" -}}
checksum/config: {{ include "cachesync.configYaml" . | sha256sum }}
{{- if not .Values.existingSecret }}
checksum/secret: {{ printf "%s\n%s" .Values.mongodb.uri .Values.redis.url | sha256sum }}
{{- end }}
{{- end }}

{{/* image.pullSecrets as items of an imagePullSecrets list (empty when there are none): the Deployment's, and in
sidecar mode the app pod's, where the app may add its own items. */}}
{{- define "cachesync.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/* One HTTP probe on the cachesync port; takes (dict "probe" <values> "path" <path>). */}}
{{- define "cachesync.probe" -}}
httpGet:
  path: {{ .path }}
  port: cachesync
{{- range $key, $value := omit .probe "enabled" }}
{{ $key }}: {{ $value }}
{{- end }}
{{- end }}

{{/* The cachesync container, as one item of a containers (or initContainers) list. */}}
{{- define "cachesync.sidecar" -}}
- name: cachesync
  image: {{ include "cachesync.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if and (eq .Values.mode "sidecar") .Values.sidecar.native }}
  restartPolicy: Always
  {{- end }}
  args:
    - --config
    - /etc/cachesync/cachesync.yaml
    {{- range .Values.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    - name: CACHESYNC_INSTANCE_ID
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    - name: CACHESYNC_CONFIG
      value: /etc/cachesync/cachesync.yaml
    - name: MONGODB_URI
      valueFrom:
        secretKeyRef:
          name: {{ include "cachesync.secretName" . }}
          key: {{ .Values.secretKeys.mongodbUri }}
    - name: REDIS_URL
      valueFrom:
        secretKeyRef:
          name: {{ include "cachesync.secretName" . }}
          key: {{ .Values.secretKeys.redisUrl }}
    {{- with .Values.redis.sentinel }}
    {{- if and .enabled .passwordSecret.name }}
    - name: REDIS_SENTINEL_PASSWORD
      valueFrom:
        secretKeyRef:
          name: {{ .passwordSecret.name | quote }}
          key: {{ .passwordSecret.key | quote }}
    {{- end }}
    {{- end }}
    {{- with .Values.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.extraEnvFrom }}
  envFrom:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  ports:
    - name: cachesync
      containerPort: {{ .Values.metrics.port }}
      protocol: TCP
    {{- if not (include "cachesync.apiOnLoopback" .) }}
    - name: cachesync-api
      containerPort: {{ .Values.api.port }}
      protocol: TCP
    {{- end }}
  {{- if .Values.startupProbe.enabled }}
  startupProbe:
    {{- include "cachesync.probe" (dict "probe" .Values.startupProbe "path" "/healthz") | nindent 4 }}
  {{- end }}
  {{- if .Values.livenessProbe.enabled }}
  livenessProbe:
    {{- include "cachesync.probe" (dict "probe" .Values.livenessProbe "path" "/healthz") | nindent 4 }}
  {{- end }}
  {{- if .Values.readinessProbe.enabled }}
  readinessProbe:
    {{- include "cachesync.probe" (dict "probe" .Values.readinessProbe "path" "/readyz") | nindent 4 }}
  {{- end }}
  {{- with .Values.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumeMounts:
    - name: cachesync-config
      mountPath: /etc/cachesync
      readOnly: true
    - name: cachesync-tmp
      mountPath: /tmp
    {{- range include "cachesync.secretMounts" . | fromYamlArray }}
    - name: {{ .name }}
      mountPath: {{ .mountPath }}
      readOnly: true
    {{- end }}
    {{- with .Values.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* The volumes the cachesync container mounts, as items of a volumes list. */}}
{{- define "cachesync.volumes" -}}
- name: cachesync-config
  configMap:
    name: {{ include "cachesync.configMapName" . }}
- name: cachesync-tmp
  emptyDir:
    sizeLimit: 16Mi
{{- range include "cachesync.secretMounts" . | fromYamlArray }}
- name: {{ .name }}
  secret:
    {{- toYaml .secret | nindent 4 }}
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}
