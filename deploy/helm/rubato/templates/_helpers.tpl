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
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
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

{{/* The Rubato config rendered from values, before structuredConfig.
In distributed mode every component reads this one config and gets its
target from the -target flag of its Deployment or StatefulSet (Tempo's way). */}}
{{- define "rubato.baseConfig" -}}
{{- $t := .Values.traces -}}
{{- $s3 := .Values.storage.trace.s3 -}}
{{- $distributed := eq .Values.deploymentMode "distributed" -}}
{{- if not $distributed }}
target: all
{{- end }}
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
{{- if $distributed }}
ingester:
  lifecycler:
    # The ingester's ID in the ring is its pod name (the hostname), stable
    # in the StatefulSet; its tokens live on the WAL volume, so a restarted
    # ingester takes back its own ranges.
    tokens_file_path: /var/rubato/tokens.json
    ring:
      replication_factor: {{ .Values.ingester.replicationFactor }}
      kvstore:
        store: memberlist
memberlist:
  bind_port: {{ .Values.memberlist.bindPort }}
  # Gossip only with members of this release (pod IPs are reused).
  cluster_label: {{ printf "%s.%s" (include "rubato.fullname" .) .Release.Namespace | quote }}
  join_members:
    - {{ include "rubato.gossipJoin" . | quote }}
querier:
  frontend_worker:
    frontend_address: {{ include "rubato.frontendAddress" . | quote }}
compactor:
  ring:
    kvstore:
      store: memberlist
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
    {{- else if and (eq .Values.storage.trace.backend "local") $distributed }}
    {{- fail "deploymentMode distributed needs an object store every component reads: set storage.trace.backend=s3 (with storage.trace.s3.*) or minio.enabled=true; the local backend lives on one pod's volume" }}
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

{{/* The cluster domain of Service DNS names. */}}
{{- define "rubato.clusterDomain" -}}
{{- default "cluster.local" .Values.global.clusterDomain -}}
{{- end }}

{{/* A Service's fully qualified DNS name; pass (dict "ctx" $ "name" "...") */}}
{{- define "rubato.serviceFQDN" -}}
{{- printf "%s.%s.svc.%s" .name .ctx.Release.Namespace (include "rubato.clusterDomain" .ctx) -}}
{{- end }}

{{/* Name of a component's resources: <fullname>-<component>. */}}
{{- define "rubato.componentName" -}}
{{- printf "%s-%s" (include "rubato.fullname" .ctx) .component | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* The label that makes a pod a member of the gossip ring Service
(tempo-distributed's). */}}
{{- define "rubato.memberlistLabel" -}}
app.kubernetes.io/part-of: memberlist
{{- end }}

{{/* memberlist.join_members: the gossip ring's headless Service. */}}
{{- define "rubato.gossipJoin" -}}
{{- printf "dns+%s:%v" (include "rubato.serviceFQDN" (dict "ctx" . "name" (include "rubato.componentName" (dict "ctx" . "component" "gossip-ring")))) .Values.memberlist.bindPort -}}
{{- end }}

{{/* querier.frontend_worker.frontend_address: the query-frontend's headless
discovery Service, gRPC port (tempo-distributed's). */}}
{{- define "rubato.frontendAddress" -}}
{{- printf "%s:%v" (include "rubato.serviceFQDN" (dict "ctx" . "name" (include "rubato.componentName" (dict "ctx" . "component" "query-frontend-discovery")))) .Values.rubato.server.grpcListenPort -}}
{{- end }}

{{/* Checks the values that no template checks on its own; included by
configmap.yaml, which every rendering has. */}}
{{- define "rubato.validate" -}}
{{- $mode := .Values.deploymentMode -}}
{{- if not (has $mode (list "single-binary" "distributed")) }}
{{- fail (printf "deploymentMode %q: want single-binary or distributed" $mode) }}
{{- end }}
{{- if eq $mode "distributed" }}
{{- $rf := int .Values.ingester.replicationFactor }}
{{- if lt $rf 1 }}
{{- fail (printf "ingester.replicationFactor %d: want at least 1" $rf) }}
{{- end }}
{{- if lt (int .Values.ingester.replicas) $rf }}
{{- fail (printf "ingester.replicas (%d) is below ingester.replicationFactor (%d): each trace is written to %d ingesters; run at least as many" (int .Values.ingester.replicas) $rf $rf) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The env of a Rubato container: S3 keys from the Secret, if any (minio-go's
credential chain reads them; no keys in the ConfigMap), then extraEnv, then
the component's; pass (dict "ctx" $ "extra" <list>). Empty when none. */}}
{{- define "rubato.env" -}}
{{- $ := .ctx -}}
{{- $secret := include "rubato.s3Secret" $ -}}
{{- $env := list -}}
{{- if $secret }}
{{- $env = append $env (dict "name" "AWS_ACCESS_KEY_ID" "valueFrom" (dict "secretKeyRef" (dict "name" $secret "key" (ternary "rootUser" $.Values.storage.trace.s3.accessKeyIdKey $.Values.minio.enabled)))) }}
{{- $env = append $env (dict "name" "AWS_SECRET_ACCESS_KEY" "valueFrom" (dict "secretKeyRef" (dict "name" $secret "key" (ternary "rootPassword" $.Values.storage.trace.s3.secretAccessKeyKey $.Values.minio.enabled)))) }}
{{- end }}
{{- $env = concat $env $.Values.extraEnv .extra -}}
{{- if $env }}{{ toYaml $env }}{{ end -}}
{{- end }}

{{/* The Service clients push traces to: the single binary's, or the
distributor's. */}}
{{- define "rubato.pushService" -}}
{{- if eq .Values.deploymentMode "distributed" }}{{ include "rubato.componentName" (dict "ctx" . "component" "distributor") }}{{ else }}{{ include "rubato.fullname" . }}{{ end -}}
{{- end }}

{{/* The Service Grafana queries: the single binary's, or the
query-frontend's. */}}
{{- define "rubato.queryService" -}}
{{- if eq .Values.deploymentMode "distributed" }}{{ include "rubato.componentName" (dict "ctx" . "component" "query-frontend") }}{{ else }}{{ include "rubato.fullname" . }}{{ end -}}
{{- end }}
