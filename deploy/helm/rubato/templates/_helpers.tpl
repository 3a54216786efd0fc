{{/* Chart name. */}}
{{- define "rubato.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, or the release name when it holds the chart's. */}}
{{- define "rubato.fullname" -}}
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

{{- define "rubato.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels; pass (dict "ctx" $ "component" "...") */}}
{{- define "rubato.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rubato.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "rubato.labels" -}}
helm.sh/chart: {{ include "rubato.chart" .ctx }}
{{ include "rubato.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{- define "rubato.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "rubato.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "rubato.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "rubato.minioName" -}}
{{- printf "%s-minio" (include "rubato.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret with S3 credentials, if any. */}}
{{- define "rubato.s3Secret" -}}
{{- if .Values.minio.enabled }}{{ include "rubato.minioName" . }}{{ else }}{{ .Values.storage.trace.s3.existingSecret }}{{ end }}
{{- end }}

{{/* The receivers enabled, as a list of dicts: name, port, protocol, config path. */}}
{{- define "rubato.receiverPorts" -}}
{{- $t := .Values.traces -}}
{{- $out := list -}}
{{- if $t.otlp.grpc.enabled }}{{ $out = append $out (dict "name" "otlp-grpc" "port" $t.otlp.grpc.port "protocol" "TCP") }}{{ end }}
{{- if $t.otlp.http.enabled }}{{ $out = append $out (dict "name" "otlp-http" "port" $t.otlp.http.port "protocol" "TCP") }}{{ end }}
{{- if $t.zipkin.enabled }}{{ $out = append $out (dict "name" "zipkin" "port" $t.zipkin.port "protocol" "TCP") }}{{ end }}
{{- if $t.jaeger.grpc.enabled }}{{ $out = append $out (dict "name" "jaeger-grpc" "port" $t.jaeger.grpc.port "protocol" "TCP") }}{{ end }}
{{- if $t.jaeger.thriftHttp.enabled }}{{ $out = append $out (dict "name" "jaeger-thrift-http" "port" $t.jaeger.thriftHttp.port "protocol" "TCP") }}{{ end }}
{{- if $t.jaeger.thriftCompact.enabled }}{{ $out = append $out (dict "name" "jaeger-compact" "port" $t.jaeger.thriftCompact.port "protocol" "UDP") }}{{ end }}
{{- if $t.jaeger.thriftBinary.enabled }}{{ $out = append $out (dict "name" "jaeger-binary" "port" $t.jaeger.thriftBinary.port "protocol" "UDP") }}{{ end }}
{{- toYaml (dict "ports" $out) }}
{{- end }}

{{/* The Rubato config rendered from values, before structuredConfig. */}}
{{- define "rubato.baseConfig" -}}
{{- $t := .Values.traces -}}
{{- $s3 := .Values.storage.trace.s3 -}}
target: all
multitenancy_enabled: {{ .Values.rubato.multitenancyEnabled }}
server:
  http_listen_port: {{ .Values.rubato.server.httpListenPort }}
  grpc_listen_port: {{ .Values.rubato.server.grpcListenPort }}
  log_level: {{ .Values.rubato.logLevel }}
  log_format: {{ .Values.rubato.logFormat }}
distributor:
  {{- if not (include "rubato.receiverPorts" . | fromYaml).ports }}
  receivers: {}
  {{- else }}
  receivers:
    {{- if or $t.otlp.grpc.enabled $t.otlp.http.enabled }}
    otlp:
      protocols:
        {{- if $t.otlp.grpc.enabled }}
        grpc:
          endpoint: 0.0.0.0:{{ $t.otlp.grpc.port }}
        {{- end }}
        {{- if $t.otlp.http.enabled }}
        http:
          endpoint: 0.0.0.0:{{ $t.otlp.http.port }}
        {{- end }}
    {{- end }}
    {{- if $t.zipkin.enabled }}
    zipkin:
      endpoint: 0.0.0.0:{{ $t.zipkin.port }}
    {{- end }}
    {{- if or $t.jaeger.grpc.enabled $t.jaeger.thriftHttp.enabled $t.jaeger.thriftCompact.enabled $t.jaeger.thriftBinary.enabled }}
    jaeger:
      protocols:
        {{- if $t.jaeger.grpc.enabled }}
        grpc:
          endpoint: 0.0.0.0:{{ $t.jaeger.grpc.port }}
        {{- end }}
        {{- if $t.jaeger.thriftHttp.enabled }}
        thrift_http:
          endpoint: 0.0.0.0:{{ $t.jaeger.thriftHttp.port }}
        {{- end }}
        {{- if $t.jaeger.thriftCompact.enabled }}
        thrift_compact:
          endpoint: 0.0.0.0:{{ $t.jaeger.thriftCompact.port }}
        {{- end }}
        {{- if $t.jaeger.thriftBinary.enabled }}
        thrift_binary:
          endpoint: 0.0.0.0:{{ $t.jaeger.thriftBinary.port }}
        {{- end }}
    {{- end }}
  {{- end }}
overrides:
  per_tenant_override_config: /runtime-config/overrides.yaml
  {{- with .Values.rubato.overrides }}
  defaults:
    {{- toYaml . | nindent 4 }}
  {{- end }}
storage:
  trace:
    blocklist_poll: {{ .Values.storage.trace.blocklistPoll }}
    wal:
      path: /var/rubato/wal
    {{- if .Values.minio.enabled }}
    backend: s3
    s3:
      bucket: {{ .Values.minio.bucket | quote }}
      endpoint: {{ printf "%s:9000" (include "rubato.minioName" .) | quote }}
      insecure: true
      forcepathstyle: true
      region: us-east-1
    {{- else if eq .Values.storage.trace.backend "s3" }}
    backend: s3
    s3:
      bucket: {{ required "storage.trace.s3.bucket is required with the s3 backend" $s3.bucket | quote }}
      endpoint: {{ required "storage.trace.s3.endpoint is required with the s3 backend" $s3.endpoint | quote }}
      {{- with $s3.region }}
      region: {{ . | quote }}
      {{- end }}
      {{- with $s3.prefix }}
      prefix: {{ . | quote }}
      {{- end }}
      insecure: {{ $s3.insecure }}
      forcepathstyle: {{ $s3.forcePathStyle }}
    {{- else if eq .Values.storage.trace.backend "local" }}
    backend: local
    local:
      path: /var/rubato/blocks
    {{- else }}
    {{- fail (printf "storage.trace.backend %q: want local or s3" .Values.storage.trace.backend) }}
    {{- end }}
{{- end }}

{{/* The final config: base, with structuredConfig merged over it. */}}
{{- define "rubato.config" -}}
{{- $base := include "rubato.baseConfig" . | fromYaml -}}
{{- if hasKey $base "Error" }}{{ fail (printf "rendering the config: %s" $base.Error) }}{{ end -}}
{{- mergeOverwrite $base (deepCopy .Values.rubato.structuredConfig) | toYaml -}}
{{- end }}

{{/* The per-tenant overrides runtime file. */}}
{{- define "rubato.runtimeConfig" -}}
{{- toYaml (dict "overrides" .Values.rubato.perTenantOverrides) -}}
{{- end }}
