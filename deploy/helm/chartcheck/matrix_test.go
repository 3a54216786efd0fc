package chartcheck

import (
	"fmt"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// receiver is one receiver's values path and what it must render.
type receiver struct {
	values   string // values under traces:, e.g. "otlp:\n  grpc:"
	port     string // Service port name
	number   int32
	protocol corev1.Protocol
	cfgPath  []string // where its endpoint sits in the Rubato config
}

var receivers = []receiver{
	{"otlp: {grpc: {enabled: %t}}", "otlp-grpc", 4317, corev1.ProtocolTCP, []string{"otlp", "protocols", "grpc"}},
	{"otlp: {http: {enabled: %t}}", "otlp-http", 4318, corev1.ProtocolTCP, []string{"otlp", "protocols", "http"}},
	{"zipkin: {enabled: %t}", "zipkin", 9411, corev1.ProtocolTCP, []string{"zipkin"}},
	{"jaeger: {grpc: {enabled: %t}}", "jaeger-grpc", 14250, corev1.ProtocolTCP, []string{"jaeger", "protocols", "grpc"}},
	{"jaeger: {thriftHttp: {enabled: %t}}", "jaeger-thrift-http", 14268, corev1.ProtocolTCP, []string{"jaeger", "protocols", "thrift_http"}},
	{"jaeger: {thriftCompact: {enabled: %t}}", "jaeger-compact", 6831, corev1.ProtocolUDP, []string{"jaeger", "protocols", "thrift_compact"}},
	{"jaeger: {thriftBinary: {enabled: %t}}", "jaeger-binary", 6832, corev1.ProtocolUDP, []string{"jaeger", "protocols", "thrift_binary"}},
}

// tracesValues renders a traces: block turning on exactly the receivers
// whose port names are in on.
func tracesValues(on ...string) string {
	set := map[string]bool{}
	for _, n := range on {
		set[n] = true
	}
	// Merge the one-line flow maps per top-level receiver by hand.
	blocks := map[string][]string{}
	for _, r := range receivers {
		line := fmt.Sprintf(r.values, set[r.port])
		top, rest, _ := strings.Cut(line, ": ")
		blocks[top] = append(blocks[top], rest)
	}
	var b strings.Builder
	b.WriteString("traces:\n")
	for _, top := range []string{"otlp", "zipkin", "jaeger"} {
		if top == "zipkin" {
			fmt.Fprintf(&b, "  zipkin: %s\n", blocks[top][0])
			continue
		}
		var inner []string
		for _, m := range blocks[top] {
			inner = append(inner, strings.TrimSuffix(strings.TrimPrefix(m, "{"), "}"))
		}
		fmt.Fprintf(&b, "  %s: {%s}\n", top, strings.Join(inner, ", "))
	}
	return b.String()
}

type matrixCase struct {
	name   string
	values string
	// expectations
	receivers    []string // enabled receiver port names; nil means the defaults
	backend      string
	secret       string // Secret the S3 keys come from ("" none)
	minio        bool
	multitenancy bool
	persistence  bool
	monitor      bool
}

func matrix() []matrixCase {
	defaults := []string{"otlp-grpc", "otlp-http"}
	cases := []matrixCase{
		{name: "defaults (local backend)", backend: "local", persistence: true},
		{name: "s3 with a Secret", backend: "s3", secret: "s3-keys", persistence: true, values: `
storage:
  trace:
    backend: s3
    s3: {bucket: traces, endpoint: s3.eu-west-1.amazonaws.com, region: eu-west-1, prefix: rubato, existingSecret: s3-keys}
`},
		{name: "s3 with an IAM role", backend: "s3", persistence: true, values: `
storage:
  trace:
    backend: s3
    s3: {bucket: traces, endpoint: s3.us-east-1.amazonaws.com, region: us-east-1}
serviceAccount:
  annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/rubato"}
`},
		{name: "external MinIO", backend: "s3", secret: "minio-keys", persistence: true, values: `
storage:
  trace:
    backend: s3
    s3: {bucket: traces, endpoint: "minio.storage.svc:9000", insecure: true, forcePathStyle: true, existingSecret: minio-keys, accessKeyIdKey: user, secretAccessKeyKey: password}
`},
		{name: "minio.enabled", backend: "s3", secret: "rel-rubato-minio", minio: true, persistence: true, values: `
minio: {enabled: true}
`},
		{name: "multitenancy with overrides", backend: "local", multitenancy: true, persistence: true, values: `
rubato:
  multitenancyEnabled: true
  overrides:
    ingestion: {rate_limit_bytes: 20000000, burst_size_bytes: 30000000}
  perTenantOverrides:
    team-a:
      ingestion: {rate_limit_bytes: 5000000}
      global: {max_bytes_per_trace: 1000000}
    "*":
      ingestion: {max_traces_per_user: 20000}
`},
		{name: "every receiver on", backend: "local", persistence: true, receivers: portNames(), values: tracesValues(portNames()...)},
		{name: "every receiver off", backend: "local", persistence: true, receivers: []string{}, values: tracesValues()},
		{name: "everything optional", backend: "s3", secret: "s3-keys", monitor: true, values: `
persistence: {enabled: false}
serviceMonitor: {enabled: true, interval: 30s, labels: {release: prom}}
storage:
  trace:
    backend: s3
    s3: {bucket: traces, endpoint: s3.amazonaws.com, existingSecret: s3-keys}
rubato:
  logLevel: debug
  logFormat: json
  extraArgs: ["-log.level=warn"]
  structuredConfig:
    ingester: {trace_idle_period: 20s, max_block_duration: 10m}
    storage: {trace: {blocklist_poll: 1m}}
extraEnv: [{name: GOMEMLIMIT, value: 900MiB}]
extraEnvFrom: [{configMapRef: {name: more-env}}]
extraVolumes: [{name: certs, secret: {secretName: ca}}]
extraVolumeMounts: [{name: certs, mountPath: /certs, readOnly: true}]
extraContainers: [{name: sidecar, image: "busybox:1.36", args: [sleep, infinity]}]
resources: {requests: {cpu: 500m, memory: 1Gi}, limits: {memory: 2Gi}}
livenessProbe: {httpGet: {path: /ready, port: http-metrics}, failureThreshold: 10}
podAnnotations: {a: b}
nodeSelector: {kubernetes.io/os: linux}
tolerations: [{key: dedicated, operator: Equal, value: tracing, effect: NoSchedule}]
imagePullSecrets: [{name: regcred}]
`},
	}
	for _, r := range receivers {
		cases = append(cases, matrixCase{name: "only " + r.port, backend: "local", persistence: true,
			receivers: []string{r.port}, values: tracesValues(r.port)})
		cases = append(cases, matrixCase{name: "all but " + r.port, backend: "local", persistence: true,
			receivers: without(portNames(), r.port), values: tracesValues(without(portNames(), r.port)...)})
	}
	for i := range cases {
		if cases[i].receivers == nil {
			cases[i].receivers = defaults
		}
	}
	return cases
}

func portNames() []string {
	var out []string
	for _, r := range receivers {
		out = append(out, r.port)
	}
	return out
}

func without(list []string, drop string) []string {
	var out []string
	for _, s := range list {
		if s != drop {
			out = append(out, s)
		}
	}
	return out
}

// TestChartMatrix renders the chart for every case and checks it (see doc.go).
func TestChartMatrix(t *testing.T) {
	for _, tc := range matrix() {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, tc.values)
			checkRendering(t, tc, objs)
		})
	}
}

func checkRendering(t *testing.T, tc matrixCase, objs map[string]object) {
	cm := objs["ConfigMap/rel-rubato"].obj.(*corev1.ConfigMap)
	verifyConfig(t, cm)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(cm.Data["rubato.yaml"]), &cfg))
	require.Equal(t, tc.multitenancy, cfg["multitenancy_enabled"])
	trace := dig(cfg, "storage", "trace").(map[string]any)
	require.Equal(t, tc.backend, trace["backend"])
	if tc.backend == "s3" {
		s3 := trace["s3"].(map[string]any)
		require.NotContains(t, s3, "access_key", "keys belong in a Secret, not the ConfigMap")
		require.NotContains(t, s3, "secret_key")
	}

	// Receivers: exactly the enabled ones, in the config, on the Service
	// and on the container, with the right protocol.
	want := map[string]receiver{}
	for _, r := range receivers {
		for _, n := range tc.receivers {
			if n == r.port {
				want[n] = r
			}
		}
	}
	recvCfg, _ := dig(cfg, "distributor", "receivers").(map[string]any)
	for _, r := range receivers {
		got := dig(recvCfg, r.cfgPath...)
		if _, on := want[r.port]; on {
			require.Equal(t, fmt.Sprintf("0.0.0.0:%d", r.number), dig(got, "endpoint"), r.port)
		} else {
			require.Nil(t, got, "%s configured but off", r.port)
		}
	}
	svc := objs["Service/rel-rubato"].obj.(*corev1.Service)
	svcPorts := map[string]corev1.ServicePort{}
	for _, p := range svc.Spec.Ports {
		svcPorts[p.Name] = p
	}
	require.Equal(t, int32(3200), svcPorts["http-metrics"].Port)
	require.Equal(t, int32(9095), svcPorts["grpc"].Port)
	require.Len(t, svcPorts, 2+len(want), "service ports %v", keys(svcPorts))
	for n, r := range want {
		require.Equal(t, r.number, svcPorts[n].Port, n)
		require.Equal(t, r.protocol, svcPorts[n].Protocol, n)
	}

	sts := objs["StatefulSet/rel-rubato"].obj.(*appsv1.StatefulSet)
	pod := sts.Spec.Template.Spec
	c := pod.Containers[0]
	require.Equal(t, "rubato", c.Name)
	ctrPorts := map[string]corev1.ContainerPort{}
	for _, p := range c.Ports {
		ctrPorts[p.Name] = p
	}
	for name, p := range svcPorts {
		require.Equal(t, p.Port, ctrPorts[name].ContainerPort, "container port %s", name)
		require.Equal(t, p.Protocol, ctrPorts[name].Protocol, "container port %s", name)
	}
	require.Len(t, ctrPorts, len(svcPorts))
	require.Equal(t, "/ready", c.ReadinessProbe.HTTPGet.Path)
	require.True(t, *pod.SecurityContext.RunAsNonRoot)
	require.True(t, *c.SecurityContext.ReadOnlyRootFilesystem)
	require.False(t, *c.SecurityContext.AllowPrivilegeEscalation)
	require.Equal(t, "rel-rubato", pod.ServiceAccountName)
	require.Contains(t, objs, "ServiceAccount/rel-rubato")
	require.Equal(t, "rel-rubato-headless", sts.Spec.ServiceName)
	require.Contains(t, objs, "Service/rel-rubato-headless")
	require.Contains(t, c.Args, "-config.file=/conf/rubato.yaml")
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		mounts[m.Name] = m.MountPath
	}
	require.Equal(t, "/var/rubato", mounts["data"], "the WAL volume")
	require.Equal(t, "/runtime-config", mounts["runtime-config"])
	if tc.persistence {
		require.Len(t, sts.Spec.VolumeClaimTemplates, 1)
		require.Equal(t, "data", sts.Spec.VolumeClaimTemplates[0].Name)
	} else {
		require.Empty(t, sts.Spec.VolumeClaimTemplates)
	}

	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	if tc.secret != "" {
		require.Equal(t, tc.secret, env["AWS_ACCESS_KEY_ID"].ValueFrom.SecretKeyRef.Name)
		require.Equal(t, tc.secret, env["AWS_SECRET_ACCESS_KEY"].ValueFrom.SecretKeyRef.Name)
	} else {
		require.NotContains(t, env, "AWS_ACCESS_KEY_ID")
	}

	_, minioDeployed := objs["Deployment/rel-rubato-minio"]
	require.Equal(t, tc.minio, minioDeployed)
	if tc.minio {
		for _, k := range []string{"Service", "Secret", "PersistentVolumeClaim"} {
			require.Contains(t, objs, k+"/rel-rubato-minio")
		}
		require.Equal(t, "rel-rubato-minio:9000", dig(trace, "s3", "endpoint"))
	}
	sm, monitored := objs["ServiceMonitor/rel-rubato"]
	require.Equal(t, tc.monitor, monitored)
	if monitored {
		require.Equal(t, "http-metrics", sm.obj.(*monitoringv1.ServiceMonitor).Spec.Endpoints[0].Port)
	}

	// helm test: present when OTLP HTTP is on, tenant given under multitenancy.
	tp, tested := objs["Pod/rel-rubato-test-roundtrip"]
	_, otlpHTTP := want["otlp-http"]
	require.Equal(t, otlpHTTP, tested)
	if tested {
		p := tp.obj.(*corev1.Pod)
		require.Equal(t, "test", p.Annotations["helm.sh/hook"])
		args := strings.Join(p.Spec.Containers[0].Args, " ")
		require.True(t, strings.HasPrefix(args, "selftest -otlp-http=http://rel-rubato.traces.svc.cluster.local:4318 -query=http://rel-rubato.traces.svc.cluster.local:3200"), args)
		require.Equal(t, tc.multitenancy, strings.Contains(args, "-tenant="), args)
	}
}

// TestConfigVerifyCatchesBadValues: a typo in structuredConfig or in a
// tenant's overrides renders (Helm cannot know Rubato's keys) and is then
// refused by rubato -config.verify, naming the key.
func TestConfigVerifyCatchesBadValues(t *testing.T) {
	for values, want := range map[string]string{
		"rubato:\n  structuredConfig:\n    ingester: {trace_idle_perod: 5s}\n":             "ingester.trace_idle_perod",
		"rubato:\n  perTenantOverrides:\n    team-a: {ingestion: {rate_limit_byts: 10}}\n": "rate_limit_byts",
	} {
		objs := render(t, values)
		out, err := runVerify(t, objs["ConfigMap/rel-rubato"].obj.(*corev1.ConfigMap))
		require.Error(t, err, out)
		require.Contains(t, out, want)
		require.Contains(t, out, "unknown key")
	}
}

// TestStructuredConfigSetsFalseAndZero: structuredConfig replaces what the
// chart rendered even with false, 0 or "" (mergeOverwrite over the parsed
// config's interface values), and merges maps key by key.
func TestStructuredConfigSetsFalseAndZero(t *testing.T) {
	objs := render(t, `minio: {enabled: true}
rubato:
  structuredConfig:
    storage: {trace: {s3: {insecure: false, region: ""}}}
    ingester: {trace_idle_period: 0s}
`)
	cm := objs["ConfigMap/rel-rubato"].obj.(*corev1.ConfigMap)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(cm.Data["rubato.yaml"]), &cfg))
	require.Equal(t, false, dig(cfg, "storage", "trace", "s3", "insecure"))
	require.Equal(t, "", dig(cfg, "storage", "trace", "s3", "region"))
	require.Equal(t, true, dig(cfg, "storage", "trace", "s3", "forcepathstyle"), "the rest of the map is kept")
	require.Equal(t, "0s", dig(cfg, "ingester", "trace_idle_period"))
	require.NotNil(t, dig(cfg, "storage", "trace", "wal", "path"))
}

// TestBadModeValuesRefused: values the chart cannot honour fail to render
// with a message naming the value, rather than rendering something else.
func TestBadModeValuesRefused(t *testing.T) {
	const dist = "deploymentMode=distributed,minio.enabled=true"
	for set, want := range map[string]string{
		"deploymentMode=microservices":             `deploymentMode "microservices": want single-binary or distributed`,
		"deploymentMode=distributed":               "deploymentMode distributed needs an object store",
		dist + ",ingester.replicas=2":              "ingester.replicas (2) is below ingester.replicationFactor (3)",
		dist + ",ingester.antiAffinity.zone=maybe": `ingester.antiAffinity.zone "maybe": want soft, hard or none`,
		dist + ",distributor.autoscaling.enabled=true," + "distributor.autoscaling.targetCPUUtilizationPercentage=0": "distributor.autoscaling: set targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage",
	} {
		out, err := helm(t, "template", "rel", chartDir, "--set", set)
		require.Error(t, err, set)
		require.Contains(t, out, want, set)
	}
}

// TestStrictDecodeRejectsUnknownFields: the check itself fails on a field
// Kubernetes does not know, and on an unknown kind.
func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	_, err := decodeStrict([]byte("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: a, namespace: b}\nspec: {replica: 1}\n"))
	require.ErrorContains(t, err, "replica")
	_, err = decodeStrict([]byte("apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: b}\nspec: {ports: [{port: 1, portName: x}]}\n"))
	require.ErrorContains(t, err, "portName")
	_, err = decodeStrict([]byte("apiVersion: v1\nkind: Widget\nmetadata: {name: a, namespace: b}\n"))
	require.ErrorContains(t, err, "unexpected kind")
	_, err = decodeStrict([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: b}\ndata: {}\n"))
	require.NoError(t, err)
}

func dig(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
