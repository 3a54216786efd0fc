{{/*
Distributed mode (deploymentMode: distributed), after grafana/tempo-distributed:
one workload per component, all from the one image and the one ConfigMap,
each picking its component with -target.
*/}}

{{/* The component of shared objects (ConfigMap, ServiceAccount): the
single binary's, or none in distributed mode. */}}
{{- define "rubato.sharedComponent" -}}
{{- if eq .Values.deploymentMode "single-binary" }}single-binary{{ end -}}
{{- end }}

{{/* The distributed components as a YAML list: name (the -target and the
app.kubernetes.io/component label), key (its values block), kind,
memberlist (whether it joins the gossip ring: every component running a ring;
the query-frontend runs none), hpa (whether it may autoscale). */}}
{{- define "rubato.components" -}}
- {name: distributor, key: distributor, kind: Deployment, memberlist: true, hpa: true}
- {name: ingester, key: ingester, kind: StatefulSet, memberlist: true, hpa: false}
- {name: querier, key: querier, kind: Deployment, memberlist: true, hpa: true}
- {name: query-frontend, key: queryFrontend, kind: Deployment, memberlist: false, hpa: true}
- {name: compactor, key: compactor, kind: Deployment, memberlist: true, hpa: true}
{{- end }}

{{/* A component's pod labels (selector labels, and the gossip-ring member
label if it gossips); pass (dict "ctx" $ "comp" <component>). */}}
{{- define "rubato.componentPodLabels" -}}
{{ include "rubato.selectorLabels" (dict "ctx" .ctx "component" .comp.name) }}
{{- if .comp.memberlist }}
{{ include "rubato.memberlistLabel" .ctx }}
{{- end }}
{{- end }}

{{/* The default anti-affinity of the ingesters (ingester.antiAffinity). */}}
{{- define "rubato.ingesterAntiAffinity" -}}
{{- $ := . -}}
{{- $sel := include "rubato.selectorLabels" (dict "ctx" $ "component" "ingester") | fromYaml -}}
{{- $required := list -}}
{{- $preferred := list -}}
{{- range $key, $topo := dict "zone" "topology.kubernetes.io/zone" "hostname" "kubernetes.io/hostname" }}
{{- $mode := get $.Values.ingester.antiAffinity $key }}
{{- $term := dict "labelSelector" (dict "matchLabels" $sel) "topologyKey" $topo }}
{{- if eq $mode "hard" }}
{{- $required = append $required $term }}
{{- else if eq $mode "soft" }}
{{- $preferred = append $preferred (dict "weight" (ternary 100 50 (eq $key "zone")) "podAffinityTerm" $term) }}
{{- else if ne $mode "none" }}
{{- fail (printf "ingester.antiAffinity.%s %q: want soft, hard or none" $key $mode) }}
{{- end }}
{{- end }}
{{- $anti := dict }}
{{- with $required }}{{ $_ := set $anti "requiredDuringSchedulingIgnoredDuringExecution" . }}{{ end }}
{{- with $preferred }}{{ $_ := set $anti "preferredDuringSchedulingIgnoredDuringExecution" . }}{{ end }}
{{- if $anti }}{{ toYaml (dict "podAntiAffinity" $anti) }}{{ end }}
{{- end }}

{{/* A component's pod template; pass (dict "ctx" $ "comp" <component>). */}}
{{- define "rubato.componentPodTemplate" -}}
{{- $ := .ctx -}}
{{- $comp := .comp -}}
{{- $v := get $.Values $comp.key -}}
{{- $ports := (include "rubato.receiverPorts" $ | fromYaml).ports -}}
{{- $wal := eq $comp.name "ingester" -}}
metadata:
  labels:
    {{- include "rubato.componentPodLabels" (dict "ctx" $ "comp" $comp) | nindent 4 }}
    {{- with $.Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # Restart on any config change (the overrides file reloads by itself).
    checksum/config: {{ include "rubato.config" $ | sha256sum }}
    {{- with $.Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- with $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "rubato.serviceAccountName" $ }}
  automountServiceAccountToken: {{ $.Values.serviceAccount.automountServiceAccountToken }}
  {{- with $.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $.Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $.Values.podSecurityContext | nindent 4 }}
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds | default $.Values.terminationGracePeriodSeconds }}
  containers:
    - name: rubato
      image: {{ include "rubato.image" $ }}
      imagePullPolicy: {{ $.Values.image.pullPolicy }}
      args:
        - -target={{ $comp.name }}
        - -config.file=/conf/rubato.yaml
        - -config.expand-env
        {{- range concat $.Values.rubato.extraArgs $v.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      ports:
        - name: http-metrics
          containerPort: {{ $.Values.rubato.server.httpListenPort }}
          protocol: TCP
        - name: grpc
          containerPort: {{ $.Values.rubato.server.grpcListenPort }}
          protocol: TCP
        {{- if $comp.memberlist }}
        - name: http-memberlist
          containerPort: {{ $.Values.memberlist.bindPort }}
          protocol: TCP
        {{- end }}
        {{- if eq $comp.name "distributor" }}
        {{- range $ports }}
        - name: {{ .name }}
          containerPort: {{ .port }}
          protocol: {{ .protocol }}
        {{- end }}
        {{- end }}
      {{- with include "rubato.env" (dict "ctx" $ "extra" $v.extraEnv) }}
      env:
        {{- . | nindent 8 }}
      {{- end }}
      {{- with $.Values.extraEnvFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $.Values.readinessProbe }}
      readinessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $.Values.livenessProbe }}
      livenessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: /conf
          readOnly: true
        - name: runtime-config
          mountPath: /runtime-config
          readOnly: true
        - name: tmp
          mountPath: /tmp
        {{- if $wal }}
        - name: data
          mountPath: /var/rubato
        {{- end }}
        {{- with $.Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    {{- with $.Values.extraContainers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- $affinity := $v.affinity }}
  {{- if and $wal (not $affinity) }}
  {{- $affinity = include "rubato.ingesterAntiAffinity" $ | fromYaml }}
  {{- end }}
  {{- with $affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "rubato.fullname" $ }}
        items:
          - key: rubato.yaml
            path: rubato.yaml
    # A directory mount (not subPath), so edits reach the running pod and
    # Rubato reloads them.
    - name: runtime-config
      configMap:
        name: {{ include "rubato.fullname" $ }}
        items:
          - key: overrides.yaml
            path: overrides.yaml
    - name: tmp
      emptyDir: {}
    {{- if and $wal (not $.Values.ingester.persistence.enabled) }}
    - name: data
      emptyDir: {}
    {{- end }}
    {{- with $.Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
