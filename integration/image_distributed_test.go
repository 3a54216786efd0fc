package integration

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/stretchr/testify/require"
	"github.com/testcontainers/testcontainers-go"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.yaml.in/yaml/v3"

	"github.com/rubatodb/rubato/integration/minio"
	"github.com/rubatodb/rubato/pkg/rubatopb"
	"github.com/rubatodb/rubato/pkg/search"
)

// helmBinary finds Helm as deploy/helm/chartcheck does: $HELM, else
// scripts/helm.sh (which prints the cached ~/.cache/rubato/helm-<version>,
// building it from Go modules the first time). Without it the test skips,
// or fails under CI=true.
func helmBinary(t *testing.T) string {
	t.Helper()
	if h := os.Getenv("HELM"); h != "" {
		return h
	}
	out, err := exec.Command("bash", "../scripts/helm.sh").Output()
	if err != nil {
		msg := fmt.Sprintf("helm unavailable (set HELM or run scripts/helm.sh): %v", err)
		if ee, ok := err.(*exec.ExitError); ok {
			msg += "\n" + string(ee.Stderr)
		}
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + " (CI=true: failing instead of skipping)")
		}
		t.Skip(msg)
	}
	return strings.TrimSpace(string(out))
}

// renderedWorkload is the part of a rendered object the test runs: a
// ConfigMap's data, a Deployment's or StatefulSet's replicas and pod
// template, a Pod's containers.
type renderedWorkload struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"` // ConfigMaps
	Spec struct {
		Replicas   int                 `yaml:"replicas"`
		Containers []renderedContainer `yaml:"containers"` // Pods
		Template   struct {
			Spec struct {
				Containers []renderedContainer `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

// renderedContainer is a rendered container's image, args and env.
type renderedContainer struct {
	Name  string   `yaml:"name"`
	Image string   `yaml:"image"`
	Args  []string `yaml:"args"`
	Env   []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom *struct {
			SecretKeyRef struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
}

// TestImageDistributedFromChart runs the chart's distributed mode from the
// image: `helm template` renders it against the test's MinIO, and every
// rendered workload runs as containers of the image next to the MinIO
// container, one per replica (3 ingesters, as the StatefulSet's replicas
// and the replication factor 3 ask; one distributor, querier,
// query-frontend and compactor), each with its rendered args (-target=…,
// -config.file, -config.expand-env) and env (the S3 keys, taken from the
// Secret the values name, supplied here as the kubelet would), the
// rendered ConfigMap's rubato.yaml and overrides.yaml mounted where the
// pods mount them, a read-only root and tmpfs volumes for /tmp and the
// ingesters' /var/rubato. A trace pushed to the distributor is read back
// and found by search through the query-frontend (so through a querier's
// worker and the ingesters), the chart's `helm test` pod (rubato selftest)
// passes against the distributor and the query-frontend, and the
// ingesters' flush reaches MinIO.
//
// What differs from a cluster, and why (everything else is as rendered):
//
//   - rubato.yaml patch: memberlist.join_members becomes the ingesters'
//     127.0.0.1 gossip ports. The rendered dns+<fullname>-gossip-ring.<ns>.svc…
//     name resolves only inside a cluster, and the -memberlist.join flag
//     would add to the file's list rather than replace it.
//   - Flags on every container: -server.{http,grpc}-listen-{address,port}
//     = 127.0.0.1 and a free port, because all the containers share the
//     host's network (pods each have their own IP and the same ports);
//     the gossiping ones also get -memberlist.bind-addr=127.0.0.1 and a free
//     -memberlist.bind-port.
//   - Ingesters: -ingester.lifecycler.ID=ingester-N. In a pod the ID is the
//     hostname (the pod's name); on the host network every container has
//     the host's. Their ring address follows the 127.0.0.1 gRPC address.
//   - Compactor: -compactor.ring.instance-addr=127.0.0.1 (a pod advertises
//     its eth0 address; here eth0 is the host's).
//   - Distributor: the OTLP receivers' endpoints, on 127.0.0.1 free ports.
//   - Querier: -querier.frontend-worker.frontend-address=127.0.0.1:<the
//     frontend's gRPC port>, for the in-cluster discovery Service name.
//
// The storage needs no override: the values give the chart the test
// MinIO's endpoint and bucket, as a user would give theirs.
func TestImageDistributedFromChart(t *testing.T) {
	helm := helmBinary(t)
	image := buildImage(t)
	srv := minio.Start(t) // sets the TESTCONTAINERS_* defaults
	bucket := srv.NewBucket(t, "rubato-dist")

	repo, tag, _ := strings.Cut(image, ":")
	values := fmt.Sprintf(`deploymentMode: distributed
image: {repository: %s, tag: %s}
storage:
  trace:
    backend: s3
    s3: {bucket: %s, endpoint: %q, region: us-east-1, insecure: true, forcePathStyle: true, existingSecret: it-minio-keys}
`, repo, tag, bucket, srv.Endpoint)
	dir := t.TempDir()
	vf := filepath.Join(dir, "values.yaml")
	require.NoError(t, os.WriteFile(vf, []byte(values), 0o644))
	cmd := exec.Command(helm, "template", "it", "../deploy/helm/rubato", "--namespace", "traces", "-f", vf)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "helm template:\n%s", out)

	objs := map[string]renderedWorkload{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var w renderedWorkload
		if err := dec.Decode(&w); err != nil {
			require.ErrorIs(t, err, io.EOF)
			break
		}
		if w.Kind != "" {
			objs[w.Kind+"/"+w.Metadata.Name] = w
		}
	}
	cm, ok := objs["ConfigMap/it-rubato"]
	require.True(t, ok, "no ConfigMap rendered")
	secret := map[string]string{"AWS_ACCESS_KEY_ID": srv.AccessKey, "AWS_SECRET_ACCESS_KEY": srv.SecretKey}

	// The one documented patch of the rendered config (see above).
	var cfg map[string]any
	require.NoError(t, yaml.Unmarshal([]byte(cm.Data["rubato.yaml"]), &cfg))
	ml := cfg["memberlist"].(map[string]any)
	require.Equal(t, []any{"dns+it-rubato-gossip-ring.traces.svc.cluster.local:7946"}, ml["join_members"])
	ingesterGossip := []int{freePort(t), freePort(t), freePort(t)}
	var join []any
	for _, p := range ingesterGossip {
		join = append(join, fmt.Sprintf("127.0.0.1:%d", p))
	}
	ml["join_members"] = join
	patched, err := yaml.Marshal(cfg)
	require.NoError(t, err)
	cfgPath, overridesPath := filepath.Join(dir, "rubato.yaml"), filepath.Join(dir, "overrides.yaml")
	require.NoError(t, os.WriteFile(cfgPath, patched, 0o644))
	require.NoError(t, os.WriteFile(overridesPath, []byte(cm.Data["overrides.yaml"]), 0o644))

	type proc struct {
		name       string
		s          *server
		ctr        testcontainers.Container
		gossipPort int
	}
	start := func(workload, name string, gossipPort int, extra ...string) *proc {
		t.Helper()
		w, ok := objs[workload]
		require.True(t, ok, "%s not rendered", workload)
		c := w.Spec.Template.Spec.Containers[0]
		require.Equal(t, image, c.Image)
		p := &proc{name: name, s: &server{ports: ports{HTTP: freePort(t), GRPC: freePort(t)}}, gossipPort: gossipPort}
		args := append([]string{}, c.Args...)
		args = append(args,
			"-server.http-listen-address=127.0.0.1", fmt.Sprintf("-server.http-listen-port=%d", p.s.ports.HTTP),
			"-server.grpc-listen-address=127.0.0.1", fmt.Sprintf("-server.grpc-listen-port=%d", p.s.ports.GRPC))
		if gossipPort != 0 {
			args = append(args, "-memberlist.bind-addr=127.0.0.1", fmt.Sprintf("-memberlist.bind-port=%d", gossipPort))
		}
		args = append(args, extra...)
		env := map[string]string{}
		for _, e := range c.Env {
			switch {
			case e.ValueFrom != nil:
				require.Equal(t, "it-minio-keys", e.ValueFrom.SecretKeyRef.Name, e.Name)
				v, ok := secret[e.ValueFrom.SecretKeyRef.Key]
				require.True(t, ok, "%s: unknown key %s of the Secret", e.Name, e.ValueFrom.SecretKeyRef.Key)
				env[e.Name] = v
			default:
				env[e.Name] = e.Value
			}
		}
		tmpfs := map[string]string{"/tmp": "uid=10001,gid=10001"}
		if strings.HasPrefix(workload, "StatefulSet/") {
			tmpfs["/var/rubato"] = "uid=10001,gid=10001" // the volumeClaimTemplate's mount
		}
		ctr, err := testcontainers.GenericContainer(context.Background(), testcontainers.GenericContainerRequest{
			ContainerRequest: testcontainers.ContainerRequest{
				Image: image,
				Cmd:   args,
				Env:   env,
				HostConfigModifier: func(hc *container.HostConfig) {
					hc.NetworkMode = "host"
					hc.Binds = []string{cfgPath + ":/conf/rubato.yaml:ro", overridesPath + ":/runtime-config/overrides.yaml:ro"}
					hc.ReadonlyRootfs = true
					hc.Tmpfs = tmpfs
				},
			},
			Started: true,
		})
		if ctr != nil {
			t.Cleanup(func() { _ = testcontainers.TerminateContainer(ctr) })
		}
		require.NoError(t, err, name)
		p.ctr = ctr
		return p
	}

	// The ingesters first, all at once (podManagementPolicy: Parallel):
	// each is ready once all three are ACTIVE in the ring.
	require.Equal(t, 3, objs["StatefulSet/it-rubato-ingester"].Spec.Replicas)
	var ingesters []*proc
	for i, gp := range ingesterGossip {
		ingesters = append(ingesters, start("StatefulSet/it-rubato-ingester", fmt.Sprintf("ingester-%d", i), gp,
			fmt.Sprintf("-ingester.lifecycler.ID=ingester-%d", i)))
	}
	for _, p := range ingesters {
		waitReadyURL(t, p.ctr, p.s.url("/ready"))
	}
	otlpHTTP, otlpGRPC := freePort(t), freePort(t)
	dist := start("Deployment/it-rubato-distributor", "distributor", freePort(t),
		fmt.Sprintf("-distributor.receivers.otlp.http.endpoint=127.0.0.1:%d", otlpHTTP),
		fmt.Sprintf("-distributor.receivers.otlp.grpc.endpoint=127.0.0.1:%d", otlpGRPC))
	fe := start("Deployment/it-rubato-query-frontend", "query-frontend", 0)
	q := start("Deployment/it-rubato-querier", "querier", freePort(t),
		fmt.Sprintf("-querier.frontend-worker.frontend-address=127.0.0.1:%d", fe.s.ports.GRPC))
	comp := start("Deployment/it-rubato-compactor", "compactor", freePort(t), "-compactor.ring.instance-addr=127.0.0.1")
	for _, p := range []*proc{dist, fe, q, comp} {
		waitReadyURL(t, p.ctr, p.s.url("/ready"))
	}

	// The rings, gossiped over memberlist: the distributor and the querier
	// see the three ingesters, the compactor is ACTIVE in its own ring, and
	// the querier's worker is connected to the frontend.
	for _, p := range []*proc{dist, q} {
		require.Eventually(t, func() bool { return activeIngesters(t, p.s) == 3 }, 30*time.Second, 200*time.Millisecond,
			"%s does not see 3 ACTIVE ingesters:\n%s", p.name, ringPage(t, p.s))
	}
	require.Eventually(t, func() bool { return strings.Contains(page(t, comp.s, "/compactor/ring"), ">ACTIVE<") }, 30*time.Second, 200*time.Millisecond,
		"compactor not ACTIVE in its ring:\n%s", page(t, comp.s, "/compactor/ring"))
	require.Eventually(t, func() bool { return fe.s.metric(t, "rubato_query_frontend_connected_workers") > 0 }, 30*time.Second, 200*time.Millisecond,
		"no querier worker connected to the query-frontend")

	// Push through the distributor's OTLP HTTP receiver.
	exp, err := otlptracehttp.New(context.Background(), otlptracehttp.WithEndpoint(fmt.Sprintf("127.0.0.1:%d", otlpHTTP)), otlptracehttp.WithInsecure())
	require.NoError(t, err)
	want := emitTraces(t, exp, "chart-distributed", 3).byTrace()
	require.Len(t, want, 3)

	// Read back through the query-frontend (jobs run by the querier's
	// worker against the ingesters).
	jobsBefore := q.s.metric(t, "rubato_querier_worker_jobs_total", `outcome="ok"`)
	for id, spans := range want {
		got := fe.s.traceByID(t, id[:], "")
		require.NotNil(t, got, "trace %s not found through the query-frontend", id)
		requireSameTrace(t, spans, got)
	}
	require.Greater(t, q.s.metric(t, "rubato_querier_worker_jobs_total", `outcome="ok"`), jobsBefore, "the frontend's jobs did not run on the querier")

	// Search through the query-frontend.
	res := &rubatopb.SearchResponse{}
	getJSON(t, fe.s, "/api/search?limit=100&q="+url.QueryEscape(`{ resource.service.name = "chart-distributed" }`), res)
	found := map[string]bool{}
	for _, tr := range res.Traces {
		found[tr.TraceID] = true
	}
	for id := range want {
		require.True(t, found[search.TraceIDString(id[:])], "search through the query-frontend misses trace %s (found %v)", id, found)
	}
	require.Len(t, found, len(want))
	t.Logf("%d traces pushed to the distributor, read back and found by search through the query-frontend; querier worker jobs ok: %v",
		len(want), q.s.metric(t, "rubato_querier_worker_jobs_total", `outcome="ok"`))

	// The chart's helm test pod, run as rendered but with its two Service
	// URLs pointed at the containers' host ports: it must push to the
	// distributor and read back through the query-frontend.
	testPod, ok := objs["Pod/it-rubato-test-roundtrip"]
	require.True(t, ok, "no helm test pod rendered")
	var selftest []string
	for _, a := range testPod.Spec.Containers[0].Args {
		switch {
		case strings.HasPrefix(a, "-otlp-http="):
			require.Equal(t, "-otlp-http=http://it-rubato-distributor.traces.svc.cluster.local:4318", a)
			a = fmt.Sprintf("-otlp-http=http://127.0.0.1:%d", otlpHTTP)
		case strings.HasPrefix(a, "-query="):
			require.Equal(t, "-query=http://it-rubato-query-frontend.traces.svc.cluster.local:3200", a)
			a = fmt.Sprintf("-query=http://127.0.0.1:%d", fe.s.ports.HTTP)
		}
		selftest = append(selftest, a)
	}
	require.Equal(t, "selftest", selftest[0])
	out, err = exec.Command("docker", append([]string{"run", "--rm", "--network=host", image}, selftest...)...).CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "selftest OK: trace ")

	// The ingesters flush to MinIO with the keys from the Secret's env.
	for _, p := range ingesters {
		p.s.flush(t)
	}
	require.Eventually(t, func() bool {
		n := 0.0
		for _, p := range ingesters {
			n += p.s.metric(t, "rubato_backend_requests_total", `backend="s3"`, `op="put"`, `status="ok"`)
		}
		return n > 0
	}, 60*time.Second, 200*time.Millisecond, "no ingester uploaded to MinIO")
}
