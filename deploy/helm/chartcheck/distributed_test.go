package chartcheck

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// component is one workload of distributed mode and what it must be.
type component struct {
	name      string // -target and app.kubernetes.io/component
	kind      string // Deployment or StatefulSet
	gossips   bool   // runs a ring, so joins memberlist
	autoscale bool   // may have an HPA
}

var components = []component{
	{"distributor", "Deployment", true, true},
	{"ingester", "StatefulSet", true, false},
	{"querier", "Deployment", true, true},
	{"query-frontend", "Deployment", false, true},
	{"compactor", "Deployment", true, true},
}

// distCase is one distributed-mode rendering and what it must show.
type distCase struct {
	name         string
	values       string // after "deploymentMode: distributed"
	full         string // resource name prefix; default rel-rubato
	receivers    []string
	secret       string
	minio        bool
	multitenancy bool
	hpa          []string // components with an HPA
	monitor      bool
	noWALVolume  bool
	rf           int // replication factor; default 3
	frontends    int // query-frontend replicas without an HPA; default 1
	domain       string
	// ingesterAffinity: the anti-affinity expected when the values do not
	// set ingester.affinity: topology key to "required" or "preferred".
	ingesterAffinity map[string]string
	customAffinity   bool
}

const s3Values = `
storage:
  trace:
    backend: s3
    s3: {bucket: traces, endpoint: s3.eu-west-1.amazonaws.com, region: eu-west-1, existingSecret: s3-keys}
`

func distMatrix() []distCase {
	cases := []distCase{
		{name: "s3 with a Secret", secret: "s3-keys", values: s3Values},
		{name: "s3 with an IAM role", values: `
storage:
  trace:
    backend: s3
    s3: {bucket: traces, endpoint: s3.us-east-1.amazonaws.com, region: us-east-1}
serviceAccount:
  annotations: {eks.amazonaws.com/role-arn: "arn:aws:iam::123456789012:role/rubato"}
`},
		{name: "external MinIO", secret: "minio-keys", values: `
storage:
  trace:
    backend: s3
    s3: {bucket: traces, endpoint: "minio.storage.svc:9000", insecure: true, forcePathStyle: true, existingSecret: minio-keys, accessKeyIdKey: user, secretAccessKeyKey: password}
`},
		{name: "minio.enabled", secret: "rel-rubato-minio", minio: true, values: "minio: {enabled: true}\n"},
		{name: "multitenancy with overrides", secret: "s3-keys", multitenancy: true, values: s3Values + `
rubato:
  multitenancyEnabled: true
  overrides:
    ingestion: {rate_limit_bytes: 20000000}
  perTenantOverrides:
    team-a: {ingestion: {rate_limit_bytes: 5000000}}
`},
		{name: "every receiver on", secret: "s3-keys", receivers: portNames(), values: s3Values + tracesValues(portNames()...)},
		{name: "every receiver off", secret: "s3-keys", receivers: []string{}, values: s3Values + tracesValues()},
		{name: "autoscaling on", secret: "s3-keys", hpa: []string{"distributor", "querier", "query-frontend", "compactor"}, values: s3Values + `
distributor: {autoscaling: {enabled: true, minReplicas: 2, maxReplicas: 10, targetMemoryUtilizationPercentage: 80}}
querier: {autoscaling: {enabled: true, maxReplicas: 5}}
queryFrontend: {autoscaling: {enabled: true, minReplicas: 2, maxReplicas: 4}}
compactor: {autoscaling: {enabled: true}}
`},
		{name: "two query-frontends", secret: "s3-keys", frontends: 2, values: s3Values + "queryFrontend: {replicas: 2}\n"},
		{name: "everything optional", full: "tracing", secret: "tracing-minio", minio: true, monitor: true, noWALVolume: true, rf: 5, domain: "k8s.example",
			ingesterAffinity: map[string]string{"topology.kubernetes.io/zone": "required"}, values: `
fullnameOverride: tracing
global: {clusterDomain: k8s.example}
minio: {enabled: true}
serviceMonitor: {enabled: true, labels: {release: prom}}
memberlist: {bindPort: 7947}
rubato:
  server: {httpListenPort: 3100, grpcListenPort: 9096}
  extraArgs: ["-log.level=warn"]
  structuredConfig:
    ingester: {trace_idle_period: 20s}
extraEnv: [{name: GOMEMLIMIT, value: 900MiB}]
extraVolumes: [{name: certs, secret: {secretName: ca}}]
extraVolumeMounts: [{name: certs, mountPath: /certs, readOnly: true}]
extraContainers: [{name: sidecar, image: "busybox:1.36", args: [sleep, infinity]}]
distributor:
  replicas: 2
  extraArgs: ["-distributor.max-inflight-push-bytes=100000000"]
  resources: {requests: {cpu: "1"}}
  service: {type: LoadBalancer, annotations: {a: b}}
ingester:
  replicas: 5
  replicationFactor: 5
  persistence: {enabled: false}
  antiAffinity: {zone: hard, hostname: none}
  podDisruptionBudget: {maxUnavailable: 2}
  extraEnv: [{name: GOGC, value: "50"}]
  nodeSelector: {disk: ssd}
querier: {replicas: 3, tolerations: [{key: q, operator: Exists}]}
queryFrontend: {service: {labels: {team: obs}}}
compactor: {extraArgs: ["-compactor.compaction.compaction-cycle=1m"], podLabels: {x: y}}
`},
		{name: "ingester affinity set", secret: "s3-keys", customAffinity: true, values: s3Values + `
ingester:
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms: [{matchExpressions: [{key: pool, operator: In, values: [tracing]}]}]
`},
	}
	for _, r := range receivers {
		cases = append(cases, distCase{name: "only " + r.port, secret: "s3-keys", receivers: []string{r.port}, values: s3Values + tracesValues(r.port)})
	}
	for i := range cases {
		c := &cases[i]
		if c.receivers == nil {
			c.receivers = []string{"otlp-grpc", "otlp-http"}
		}
		if c.full == "" {
			c.full = "rel-rubato"
		}
		if c.rf == 0 {
			c.rf = 3
		}
		if c.domain == "" {
			c.domain = "cluster.local"
		}
		if c.ingesterAffinity == nil && !c.customAffinity {
			c.ingesterAffinity = map[string]string{"topology.kubernetes.io/zone": "preferred", "kubernetes.io/hostname": "preferred"}
		}
	}
	return cases
}

// TestChartDistributed renders distributed mode for every case and checks
// it: strict decoding (render), every component's command line through
// `rubato -config.verify`, and the wiring between the objects.
func TestChartDistributed(t *testing.T) {
	for _, tc := range distMatrix() {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, "deploymentMode: distributed\n"+tc.values)
			checkDistributed(t, tc, objs)
		})
	}
}

// rendered is a distributed rendering, indexed.
type rendered struct {
	tc       distCase
	objs     map[string]object
	pods     map[string]corev1.PodTemplateSpec // by component
	services map[string]*corev1.Service        // by name
}

func checkDistributed(t *testing.T, tc distCase, objs map[string]object) {
	r := &rendered{tc: tc, objs: objs, pods: map[string]corev1.PodTemplateSpec{}, services: map[string]*corev1.Service{}}
	for _, o := range objs {
		if s, ok := o.obj.(*corev1.Service); ok {
			r.services[s.Name] = s
		}
	}
	name := func(c string) string { return tc.full + "-" + c }

	// No single-binary workload.
	require.NotContains(t, objs, "StatefulSet/"+tc.full)
	require.NotContains(t, objs, "Service/"+tc.full)

	cm := objs["ConfigMap/"+tc.full].obj.(*corev1.ConfigMap)
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(cm.Data["rubato.yaml"]), &cfg))
	require.NotContains(t, cfg, "target", "the target is each workload's -target flag")
	require.Equal(t, tc.multitenancy, cfg["multitenancy_enabled"])
	require.Equal(t, "s3", dig(cfg, "storage", "trace", "backend"))
	require.Nil(t, dig(cfg, "storage", "trace", "s3", "access_key"), "keys belong in a Secret")
	require.Nil(t, dig(cfg, "storage", "trace", "s3", "secret_key"), "keys belong in a Secret")
	require.Equal(t, "memberlist", dig(cfg, "ingester", "lifecycler", "ring", "kvstore", "store"))
	require.EqualValues(t, tc.rf, dig(cfg, "ingester", "lifecycler", "ring", "replication_factor"))
	require.Equal(t, "memberlist", dig(cfg, "compactor", "ring", "kvstore", "store"))
	httpPort, grpcPort := int32(3200), int32(9095)
	if v, ok := dig(cfg, "server", "http_listen_port").(float64); ok {
		httpPort = int32(v)
	}
	if v, ok := dig(cfg, "server", "grpc_listen_port").(float64); ok {
		grpcPort = int32(v)
	}
	gossipPort := int32(dig(cfg, "memberlist", "bind_port").(float64))

	// Workloads: one per component, -target set, selectors matching their
	// own pods and no other component's.
	for _, c := range components {
		key := c.kind + "/" + name(c.name)
		require.Contains(t, objs, key)
		var (
			pod      corev1.PodTemplateSpec
			sel      *metav1.LabelSelector
			replicas *int32
		)
		switch w := objs[key].obj.(type) {
		case *appsv1.Deployment:
			pod, sel, replicas = w.Spec.Template, w.Spec.Selector, w.Spec.Replicas
		case *appsv1.StatefulSet:
			pod, sel, replicas = w.Spec.Template, w.Spec.Selector, w.Spec.Replicas
		}
		r.pods[c.name] = pod
		require.Equal(t, c.name, pod.Labels["app.kubernetes.io/component"])
		s, err := metav1.LabelSelectorAsSelector(sel)
		require.NoError(t, err)
		require.True(t, s.Matches(labels.Set(pod.Labels)), "%s: selector %s does not match its pods %v", key, s, pod.Labels)
		require.Equal(t, slices.Contains(tc.hpa, c.name), replicas == nil, "%s: replicas must be left to the HPA exactly when there is one", key)

		ctr := pod.Spec.Containers[0]
		require.Equal(t, "rubato", ctr.Name)
		targets := 0
		for _, a := range ctr.Args {
			if strings.HasPrefix(a, "-target=") {
				targets++
				require.Equal(t, "-target="+c.name, a, key)
			}
		}
		require.Equal(t, 1, targets, "%s args %v", key, ctr.Args)
		require.Contains(t, ctr.Args, "-config.file=/conf/rubato.yaml")
		// Rubato itself accepts the config as this container runs it.
		verifyConfig(t, cm, ctr.Args...)

		require.Equal(t, "/ready", ctr.ReadinessProbe.HTTPGet.Path)
		require.Equal(t, "http-metrics", ctr.ReadinessProbe.HTTPGet.Port.String())
		require.True(t, *pod.Spec.SecurityContext.RunAsNonRoot)
		require.True(t, *ctr.SecurityContext.ReadOnlyRootFilesystem)
		require.False(t, *ctr.SecurityContext.AllowPrivilegeEscalation)
		require.Equal(t, tc.full, pod.Spec.ServiceAccountName)
		require.NotEmpty(t, pod.Annotations["checksum/config"])
		mounts := map[string]string{}
		for _, m := range ctr.VolumeMounts {
			mounts[m.Name] = m.MountPath
		}
		require.Equal(t, "/conf", mounts["config"])
		require.Equal(t, "/runtime-config", mounts["runtime-config"])
		require.Equal(t, "/tmp", mounts["tmp"], "read-only root: /tmp must be a volume")
		vols := map[string]corev1.Volume{}
		for _, v := range pod.Spec.Volumes {
			vols[v.Name] = v
		}
		require.Equal(t, tc.full, vols["config"].ConfigMap.Name)
		env := map[string]corev1.EnvVar{}
		for _, e := range ctr.Env {
			env[e.Name] = e
		}
		if tc.secret != "" {
			require.Equal(t, tc.secret, env["AWS_ACCESS_KEY_ID"].ValueFrom.SecretKeyRef.Name, key)
			require.Equal(t, tc.secret, env["AWS_SECRET_ACCESS_KEY"].ValueFrom.SecretKeyRef.Name, key)
		} else {
			require.NotContains(t, env, "AWS_ACCESS_KEY_ID")
		}
		ports := containerPorts(ctr)
		require.Equal(t, httpPort, ports["http-metrics"].ContainerPort)
		require.Equal(t, grpcPort, ports["grpc"].ContainerPort)
		if c.gossips {
			require.Equal(t, gossipPort, ports["http-memberlist"].ContainerPort, "%s gossips: it needs the memberlist port", key)
		} else {
			require.NotContains(t, ports, "http-memberlist", "%s runs no ring and does not listen for gossip", key)
		}
	}
	for a, pa := range r.pods {
		for b, pb := range r.pods {
			if a != b {
				require.NotEqual(t, pa.Labels["app.kubernetes.io/component"], pb.Labels["app.kubernetes.io/component"])
			}
		}
	}

	// Every Service with a selector reaches pods that have its target
	// ports; the component Services select exactly their component.
	for _, svc := range r.services {
		if svc.Labels["app.kubernetes.io/component"] == "minio" {
			continue
		}
		matched := r.selects(svc.Spec.Selector)
		require.NotEmpty(t, matched, "Service %s selects no pod", svc.Name)
		for _, c := range matched {
			ports := containerPorts(r.pods[c].Spec.Containers[0])
			for _, p := range svc.Spec.Ports {
				cp, ok := ports[p.TargetPort.String()]
				require.True(t, ok, "Service %s port %s: target %s is not a port of %s", svc.Name, p.Name, p.TargetPort.String(), c)
				require.Equal(t, p.Protocol, cp.Protocol, "Service %s port %s", svc.Name, p.Name)
			}
		}
	}
	for _, c := range components {
		svc := r.services[name(c.name)]
		require.NotNil(t, svc, "Service of %s", c.name)
		require.Equal(t, []string{c.name}, r.selects(svc.Spec.Selector), "Service %s", svc.Name)
		want := map[string]int32{"http-metrics": httpPort, "grpc": grpcPort}
		if c.name == "distributor" {
			for _, rc := range receivers {
				if slices.Contains(tc.receivers, rc.port) {
					want[rc.port] = rc.number
				}
			}
		}
		got := map[string]int32{}
		for _, p := range svc.Spec.Ports {
			got[p.Name] = p.Port
		}
		require.Equal(t, want, got, "Service %s ports", svc.Name)
		if c.name != "distributor" {
			for _, rc := range receivers {
				require.NotContains(t, containerPorts(r.pods[c.name].Spec.Containers[0]), rc.port, "%s listens on no receiver", c.name)
			}
		}
	}
	// The receivers: exactly the enabled ones in the config, each on the
	// distributor's container with its protocol.
	dist := containerPorts(r.pods["distributor"].Spec.Containers[0])
	for _, rc := range receivers {
		got := dig(dig(cfg, "distributor", "receivers"), rc.cfgPath...)
		if slices.Contains(tc.receivers, rc.port) {
			require.Equal(t, fmt.Sprintf("0.0.0.0:%d", rc.number), dig(got, "endpoint"), rc.port)
			require.Equal(t, rc.number, dist[rc.port].ContainerPort, rc.port)
			require.Equal(t, rc.protocol, dist[rc.port].Protocol, rc.port)
		} else {
			require.Nil(t, got, "%s configured but off", rc.port)
			require.NotContains(t, dist, rc.port)
		}
	}

	// Gossip: join_members names the headless gossip Service, which lists
	// every component running a ring, ready or not.
	join := dig(cfg, "memberlist", "join_members").([]any)
	require.Len(t, join, 1)
	addr, ok := strings.CutPrefix(join[0].(string), "dns+")
	require.True(t, ok, "join_members %v: want a dns+ name", join)
	gossip, port := r.resolve(t, addr)
	require.Equal(t, name("gossip-ring"), gossip.Name)
	require.Equal(t, "None", gossip.Spec.ClusterIP, "the gossip Service must be headless")
	require.True(t, gossip.Spec.PublishNotReadyAddresses, "starting pods must be able to join")
	require.Equal(t, gossipPort, port.Port)
	var members []string
	for _, c := range components {
		if c.gossips {
			members = append(members, c.name)
			require.Equal(t, "memberlist", r.pods[c.name].Labels["app.kubernetes.io/part-of"], "%s pods lack the gossip-member label", c.name)
		}
	}
	require.Equal(t, members, r.selects(gossip.Spec.Selector), "gossip ring members")

	// The queriers' frontend address is the query-frontend's gRPC port,
	// through a headless Service: its DNS name resolves to every frontend
	// pod, and each querier's worker takes jobs from all of them, so any
	// number of frontends (or an HPA) is served.
	fe, port := r.resolve(t, dig(cfg, "querier", "frontend_worker", "frontend_address").(string))
	require.Equal(t, []string{"query-frontend"}, r.selects(fe.Spec.Selector), "frontend_address %s", fe.Name)
	require.Equal(t, corev1.ClusterIPNone, fe.Spec.ClusterIP, "frontend_address %s must name every frontend pod (headless)", fe.Name)
	if !slices.Contains(tc.hpa, "query-frontend") {
		want := int32(max(tc.frontends, 1))
		d := objs["Deployment/"+name("query-frontend")].obj.(*appsv1.Deployment)
		require.Equal(t, want, *d.Spec.Replicas, "query-frontend replicas")
	}
	require.Equal(t, grpcPort, containerPorts(r.pods["query-frontend"].Spec.Containers[0])[port.TargetPort.String()].ContainerPort, "frontend_address must reach the frontend's gRPC port")

	// Ingesters: a StatefulSet with a governing headless Service, the WAL
	// (and ring tokens) on its volume, spread over zones, and a PDB.
	sts := objs["StatefulSet/"+name("ingester")].obj.(*appsv1.StatefulSet)
	gov := r.services[sts.Spec.ServiceName]
	require.NotNil(t, gov, "the ingesters' serviceName %q is not rendered", sts.Spec.ServiceName)
	require.Equal(t, "None", gov.Spec.ClusterIP)
	require.Equal(t, []string{"ingester"}, r.selects(gov.Spec.Selector))
	require.Equal(t, appsv1.ParallelPodManagement, sts.Spec.PodManagementPolicy)
	require.EqualValues(t, tc.rf, *sts.Spec.Replicas)
	ing := sts.Spec.Template.Spec
	var dataMount string
	for _, m := range ing.Containers[0].VolumeMounts {
		if m.Name == "data" {
			dataMount = m.MountPath
		}
	}
	require.NotEmpty(t, dataMount, "the ingester has no data volume mounted")
	require.True(t, strings.HasPrefix(dig(cfg, "storage", "trace", "wal", "path").(string), dataMount+"/"), "the WAL is not on the data volume")
	require.True(t, strings.HasPrefix(dig(cfg, "ingester", "lifecycler", "tokens_file_path").(string), dataMount+"/"), "the ring tokens are not on the data volume")
	if tc.noWALVolume {
		require.Empty(t, sts.Spec.VolumeClaimTemplates)
	} else {
		require.Len(t, sts.Spec.VolumeClaimTemplates, 1, "the ingesters need a persistent WAL volume")
		require.Equal(t, "data", sts.Spec.VolumeClaimTemplates[0].Name)
		for _, v := range ing.Volumes {
			require.NotEqual(t, "data", v.Name, "a pod volume named data would shadow the claim")
		}
	}
	if tc.customAffinity {
		require.Nil(t, ing.Affinity.PodAntiAffinity, "ingester.affinity replaces the default anti-affinity")
		require.NotNil(t, ing.Affinity.NodeAffinity)
	} else {
		got := map[string]string{}
		ingLabels := labels.Set(sts.Spec.Template.Labels)
		anti := ing.Affinity.PodAntiAffinity
		for _, term := range anti.RequiredDuringSchedulingIgnoredDuringExecution {
			require.True(t, selectorMatches(t, term.LabelSelector, ingLabels), "anti-affinity term does not select the ingesters")
			got[term.TopologyKey] = "required"
		}
		for _, w := range anti.PreferredDuringSchedulingIgnoredDuringExecution {
			require.True(t, selectorMatches(t, w.PodAffinityTerm.LabelSelector, ingLabels), "anti-affinity term does not select the ingesters")
			got[w.PodAffinityTerm.TopologyKey] = "preferred"
		}
		require.Equal(t, tc.ingesterAffinity, got)
	}
	pdb := objs["PodDisruptionBudget/"+name("ingester")].obj.(*policyv1.PodDisruptionBudget)
	require.NotNil(t, pdb.Spec.MaxUnavailable)
	wantMax := 1
	if tc.rf == 5 {
		wantMax = 2
	}
	require.Equal(t, wantMax, pdb.Spec.MaxUnavailable.IntValue())
	s, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	require.NoError(t, err)
	for c, p := range r.pods {
		require.Equal(t, c == "ingester", s.Matches(labels.Set(p.Labels)), "the PDB must cover exactly the ingesters (%s)", c)
	}

	// HPAs: for exactly the components asked, each scaling its workload.
	for _, c := range components {
		o, has := objs["HorizontalPodAutoscaler/"+name(c.name)]
		require.Equal(t, slices.Contains(tc.hpa, c.name), has, "HPA of %s", c.name)
		if has {
			hpa := o.obj.(*autoscalingv2.HorizontalPodAutoscaler)
			ref := hpa.Spec.ScaleTargetRef
			require.Contains(t, objs, ref.Kind+"/"+ref.Name)
			require.Equal(t, "apps/v1", ref.APIVersion)
			require.Equal(t, name(c.name), ref.Name)
			require.NotEmpty(t, hpa.Spec.Metrics)
			require.LessOrEqual(t, *hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
		}
	}

	// ServiceMonitor: scrapes every component's Service, and only those.
	sm, monitored := objs["ServiceMonitor/"+tc.full]
	require.Equal(t, tc.monitor, monitored)
	if monitored {
		spec := sm.obj.(*monitoringv1.ServiceMonitor).Spec
		sel, err := metav1.LabelSelectorAsSelector(&spec.Selector)
		require.NoError(t, err)
		var scraped []string
		for _, svc := range r.services {
			if sel.Matches(labels.Set(svc.Labels)) {
				scraped = append(scraped, svc.Name)
			}
		}
		var want []string
		for _, c := range components {
			want = append(want, name(c.name))
		}
		slices.Sort(scraped)
		slices.Sort(want)
		require.Equal(t, want, scraped, "ServiceMonitor targets")
		require.Equal(t, "http-metrics", spec.Endpoints[0].Port)
	}

	// helm test: pushes to the distributor, reads from the query-frontend.
	tp, tested := objs["Pod/"+tc.full+"-test-roundtrip"]
	require.Equal(t, slices.Contains(tc.receivers, "otlp-http"), tested)
	if tested {
		args := tp.obj.(*corev1.Pod).Spec.Containers[0].Args
		require.Equal(t, "selftest", args[0])
		for _, a := range args[1:] {
			flag, u, _ := strings.Cut(a, "=")
			if flag != "-otlp-http" && flag != "-query" {
				continue
			}
			svc, _ := r.resolve(t, strings.TrimPrefix(u, "http://"))
			want := map[string]string{"-otlp-http": "distributor", "-query": "query-frontend"}[flag]
			require.Equal(t, []string{want}, r.selects(svc.Spec.Selector), "helm test %s", a)
		}
		require.Equal(t, tc.multitenancy, slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "-tenant=") }))
	}
}

// containerPorts indexes a container's ports by name.
func containerPorts(c corev1.Container) map[string]corev1.ContainerPort {
	out := map[string]corev1.ContainerPort{}
	for _, p := range c.Ports {
		out[p.Name] = p
	}
	return out
}

// selects lists the components whose pods a Service selector matches, in
// the order of components.
func (r *rendered) selects(selector map[string]string) []string {
	var out []string
	if len(selector) == 0 {
		return nil
	}
	s := labels.SelectorFromSet(selector)
	for _, c := range components {
		if s.Matches(labels.Set(r.pods[c.name].Labels)) {
			out = append(out, c.name)
		}
	}
	return out
}

// resolve finds the rendered Service and port that a cluster DNS address
// <service>.<namespace>.svc.<domain>:<port> reaches.
func (r *rendered) resolve(t *testing.T, addr string) (*corev1.Service, corev1.ServicePort) {
	t.Helper()
	host, p, err := net.SplitHostPort(addr)
	require.NoError(t, err, addr)
	port, err := strconv.Atoi(p)
	require.NoError(t, err, addr)
	svcName, rest, _ := strings.Cut(host, ".")
	require.Equal(t, "traces.svc."+r.tc.domain, rest, "%s: not a Service of the release's namespace and cluster domain", addr)
	svc := r.services[svcName]
	require.NotNil(t, svc, "%s: Service %s is not rendered", addr, svcName)
	for _, sp := range svc.Spec.Ports {
		if int(sp.Port) == port {
			return svc, sp
		}
	}
	t.Fatalf("%s: Service %s has no port %d", addr, svcName, port)
	return nil, corev1.ServicePort{}
}

func selectorMatches(t *testing.T, sel *metav1.LabelSelector, set labels.Set) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	require.NoError(t, err)
	return s.Matches(set)
}

// notes renders NOTES.txt (which `helm template` leaves out) by wrapping it
// in a ConfigMap template in a copy of the chart.
func notes(t *testing.T, sets ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "rubato")
	require.NoError(t, os.CopyFS(dir, os.DirFS(chartDir)))
	src, err := os.ReadFile(filepath.Join(dir, "templates", "NOTES.txt"))
	require.NoError(t, err)
	require.NoError(t, os.Remove(filepath.Join(dir, "templates", "NOTES.txt")))
	wrapped := `{{- define "chartcheck.notes" }}` + string(src) + "{{ end }}\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\ndata:\n  notes: {{ include \"chartcheck.notes\" . | quote }}\n"
	require.NoError(t, os.WriteFile(filepath.Join(dir, "templates", "chartcheck-notes.yaml"), []byte(wrapped), 0o644))
	args := []string{"template", "rel", dir, "--namespace", "traces", "--show-only", "templates/chartcheck-notes.yaml"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	out, err := helm(t, args...)
	require.NoError(t, err, out)
	var cm corev1.ConfigMap
	require.NoError(t, yaml.Unmarshal([]byte(out), &cm), out)
	return cm.Data["notes"]
}

// TestNotes: NOTES.txt gives Grafana the query Service of the mode and
// clients the push Service, with the enabled receivers only.
func TestNotes(t *testing.T) {
	single := notes(t, "traces.zipkin.enabled=true")
	require.Contains(t, single, "http://rel-rubato.traces.svc.cluster.local:3200\n")
	require.Contains(t, single, "OTLP gRPC:          rel-rubato.traces.svc.cluster.local:4317\n")
	require.Contains(t, single, "OTLP HTTP:          http://rel-rubato.traces.svc.cluster.local:4318")
	require.Contains(t, single, "Zipkin:             http://rel-rubato.traces.svc.cluster.local:9411")
	require.NotContains(t, single, "Jaeger")

	dist := notes(t, "deploymentMode=distributed", "minio.enabled=true", "traces.otlp.grpc.enabled=false", "global.clusterDomain=example.org")
	require.Contains(t, dist, "(the query-frontend):\n  http://rel-rubato-query-frontend.traces.svc.example.org:3200\n")
	require.Contains(t, dist, "OTLP HTTP:          http://rel-rubato-distributor.traces.svc.example.org:4318")
	require.NotContains(t, dist, "OTLP gRPC")
	require.NotContains(t, dist, "rel-rubato.traces", "no single-binary Service in distributed mode")
	require.Contains(t, dist, "rel-rubato-gossip-ring")
}
