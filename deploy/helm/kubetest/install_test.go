package kubetest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
)

// chartDir is the chart under test; $KUBETEST_CHART points elsewhere
// (e.g. another branch's checkout of the chart).
var chartDir = func() string {
	if d := os.Getenv("KUBETEST_CHART"); d != "" {
		return d
	}
	return filepath.Join("..", "rubato")
}()

// valueCase is one row of the install/upgrade table: the values a release
// is installed with, what must exist first, and the values of the upgrade.
type valueCase struct {
	name string
	// values of `helm install`.
	values string
	// upgrade is laid over values for `helm upgrade` (a second -f).
	upgrade string
	// secrets are created in the namespace before the install (name to
	// data), as a user's existing Secret would be.
	secrets map[string]map[string]string
	// checkUpgrade checks what the upgrade must have changed, given the
	// release's objects on the server before and after it.
	checkUpgrade func(t *testing.T, before, after map[objKey]*unstructured.Unstructured)
}

// upgradeValues is the usual upgrade: a config change (log level), a
// receiver turned off (OTLP gRPC) and new container resources.
const upgradeValues = `
rubato: {logLevel: debug}
traces: {otlp: {grpc: {enabled: false}}}
resources: {requests: {cpu: 100m, memory: 128Mi}}
`

func valueCases() []valueCase {
	return []valueCase{
		{
			name: "single-binary, external MinIO",
			values: `
storage:
  trace:
    backend: s3
    s3: {bucket: traces, endpoint: "minio.storage.svc:9000", insecure: true, forcePathStyle: true, existingSecret: minio-keys, accessKeyIdKey: user, secretAccessKeyKey: password}
`,
			secrets:      map[string]map[string]string{"minio-keys": {"user": "rubato", "password": "rubato-secret"}},
			upgrade:      upgradeValues,
			checkUpgrade: usualUpgrade,
		},
		{
			name: "single-binary, minio.enabled",
			values: `
minio: {enabled: true}
traces: {zipkin: {enabled: true}}
`,
			// upgradeValues, and zipkin off and MinIO's resources up.
			upgrade: `
rubato: {logLevel: debug}
traces: {zipkin: {enabled: false}, otlp: {grpc: {enabled: false}}}
resources: {requests: {cpu: 100m, memory: 128Mi}}
minio: {resources: {requests: {memory: 256Mi}}}
`,
			checkUpgrade: func(t *testing.T, before, after map[objKey]*unstructured.Unstructured) {
				usualUpgrade(t, before, after)
				for k, o := range after {
					if k.kind == "Service" {
						require.NotContains(t, servicePorts(o), "zipkin", "zipkin port on %s after upgrade", k)
					}
				}
			},
		},
		{
			name: "single-binary, S3 with an existing Secret",
			values: `
storage:
  trace:
    backend: s3
    s3: {bucket: traces, endpoint: s3.eu-west-1.amazonaws.com, region: eu-west-1, prefix: rubato, existingSecret: s3-keys}
`,
			secrets: map[string]map[string]string{"s3-keys": {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"}},
			// Also moves to another bucket.
			upgrade: upgradeValues + `
storage: {trace: {s3: {bucket: traces-2}}}
`,
			checkUpgrade: func(t *testing.T, before, after map[objKey]*unstructured.Unstructured) {
				usualUpgrade(t, before, after)
				var found bool
				for k, o := range after {
					if k.kind == "ConfigMap" {
						cfg, _, _ := unstructured.NestedString(o.Object, "data", "rubato.yaml")
						if strings.Contains(cfg, "traces-2") {
							found = true
						}
					}
				}
				require.True(t, found, "no ConfigMap holds the new bucket")
			},
		},
		{
			name: "distributed, external MinIO",
			values: `
deploymentMode: distributed
storage:
  trace:
    backend: s3
    s3: {bucket: traces, endpoint: "minio.storage.svc:9000", insecure: true, forcePathStyle: true, existingSecret: minio-keys, accessKeyIdKey: user, secretAccessKeyKey: password}
`,
			secrets: map[string]map[string]string{"minio-keys": {"user": "rubato", "password": "rubato-secret"}},
			// upgradeValues per component, two queriers, and the
			// distributor's HorizontalPodAutoscaler added.
			upgrade: `
rubato: {logLevel: debug}
traces: {otlp: {grpc: {enabled: false}}}
distributor: {resources: {requests: {cpu: 100m}}, autoscaling: {enabled: true}}
ingester: {resources: {requests: {cpu: 100m}}}
querier: {replicas: 2, resources: {requests: {cpu: 100m}}}
queryFrontend: {resources: {requests: {cpu: 100m}}}
compactor: {resources: {requests: {cpu: 100m}}}
`,
			checkUpgrade: func(t *testing.T, before, after map[objKey]*unstructured.Unstructured) {
				usualUpgrade(t, before, after)
				var hpas int
				for k, o := range after {
					switch {
					case k.kind == "HorizontalPodAutoscaler":
						_, existed := before[k]
						require.False(t, existed, "%s before the upgrade", k)
						hpas++
					case k.kind == "Deployment" && strings.HasSuffix(k.name, "-querier"):
						n, _, _ := unstructured.NestedInt64(o.Object, "spec", "replicas")
						require.EqualValues(t, 2, n, "replicas of %s", k)
					}
				}
				require.Equal(t, 1, hpas, "HorizontalPodAutoscalers after the upgrade")
			},
		},
	}
}

// usualUpgrade checks upgradeValues' effects: every pod template that
// carried a config checksum carries a new one, no Service keeps the
// otlp-grpc port, and the rubato containers have the new requests.
func usualUpgrade(t *testing.T, before, after map[objKey]*unstructured.Unstructured) {
	t.Helper()
	var checksums, services int
	for k, o := range after {
		switch k.kind {
		case "StatefulSet", "Deployment":
			newSum, ok, _ := unstructured.NestedString(o.Object, "spec", "template", "metadata", "annotations", "checksum/config")
			if !ok {
				continue
			}
			old, ok := before[k]
			require.True(t, ok, "%s is new after the upgrade", k)
			oldSum, _, _ := unstructured.NestedString(old.Object, "spec", "template", "metadata", "annotations", "checksum/config")
			require.NotEqual(t, oldSum, newSum, "checksum/config of %s unchanged by a config change", k)
			checksums++
			containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
			for _, c := range containers {
				c := c.(map[string]any)
				if c["name"] != "rubato" {
					continue
				}
				cpu, _, _ := unstructured.NestedString(c, "resources", "requests", "cpu")
				require.Equal(t, "100m", cpu, "cpu request of %s", k)
			}
		case "Service":
			if old, ok := before[k]; ok && slices.Contains(servicePorts(old), "otlp-grpc") {
				require.NotContains(t, servicePorts(o), "otlp-grpc", "otlp-grpc port on %s after upgrade", k)
				services++
			}
		}
	}
	require.NotZero(t, checksums, "no workload carries checksum/config")
	require.NotZero(t, services, "no Service had the otlp-grpc port")
}

func servicePorts(o *unstructured.Unstructured) []string {
	ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
	var names []string
	for _, p := range ports {
		names = append(names, fmt.Sprint(p.(map[string]any)["name"]))
	}
	return names
}

// TestHelmInstallUpgrade installs, upgrades and uninstalls the chart with
// each valueCase on a real kube-apiserver (see the package doc).
func TestHelmInstallUpgrade(t *testing.T) {
	apiserverBin, etcdBin, helmBin := binaries(t)
	start := time.Now()
	c := startCluster(t, apiserverBin, etcdBin)
	t.Logf("etcd and kube-apiserver ready in %s", time.Since(start).Round(time.Millisecond))
	h := &helmRunner{bin: helmBin, kubeconfig: c.kubeconfig, home: t.TempDir()}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(c.client.Discovery()))
	c.mapper = mapper

	for i, vc := range valueCases() {
		t.Run(vc.name, func(t *testing.T) {
			ns := fmt.Sprintf("kubetest-%d", i)
			const rel = "rel"
			// Not t.TempDir(): its name has the subtest's commas, and helm
			// splits -f at commas.
			dir := filepath.Join(h.home, ns)
			require.NoError(t, os.Mkdir(dir, 0o700))
			values := filepath.Join(dir, "values.yaml")
			upgrade := filepath.Join(dir, "upgrade.yaml")
			require.NoError(t, os.WriteFile(values, []byte(vc.values), 0o600))
			require.NoError(t, os.WriteFile(upgrade, []byte(vc.upgrade), 0o600))

			// The namespace, its default ServiceAccount (kube-controller-manager
			// would create it; the `helm test` pod runs as it) and the
			// user's Secrets.
			_, err := c.client.CoreV1().Namespaces().Create(ctx(t), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
			require.NoError(t, err)
			_, err = c.client.CoreV1().ServiceAccounts(ns).Create(ctx(t), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{})
			require.NoError(t, err)
			for name, data := range vc.secrets {
				_, err := c.client.CoreV1().Secrets(ns).Create(ctx(t), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, StringData: data}, metav1.CreateOptions{})
				require.NoError(t, err)
			}

			// Install.
			h.run(t, "install", rel, chartDir, "-n", ns, "-f", values, "--timeout", "2m")
			installed := c.checkRelease(t, h, rel, ns, values)

			// Upgrade.
			h.run(t, "upgrade", rel, chartDir, "-n", ns, "-f", values, "-f", upgrade, "--timeout", "2m")
			upgraded := c.checkRelease(t, h, rel, ns, values, upgrade)
			for k := range installed {
				if _, ok := upgraded[k]; !ok {
					c.requireGone(t, k)
				}
			}
			vc.checkUpgrade(t, installed, upgraded)
			status := h.run(t, "status", rel, "-n", ns, "-o", "json")
			require.Contains(t, status, `"status":"deployed"`)
			require.Contains(t, status, `"version":2`)

			// Uninstall: every object is gone (or, for a PVC, being deleted).
			h.run(t, "uninstall", rel, "-n", ns, "--timeout", "2m")
			for k := range upgraded {
				c.requireGone(t, k)
			}
		})
	}
}

// helmRunner runs the helm binary against the test cluster, with its own
// config, cache and data directories.
type helmRunner struct {
	bin, kubeconfig, home string
}

func (h *helmRunner) run(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(h.bin, args...)
	cmd.Env = append(os.Environ(),
		"KUBECONFIG="+h.kubeconfig,
		"HELM_CONFIG_HOME="+filepath.Join(h.home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(h.home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(h.home, "data"),
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	require.NoError(t, err, "helm %s\n%s%s", strings.Join(args, " "), stderr.String(), stdout.String())
	return stdout.String()
}

// objKey names one object of a release.
type objKey struct {
	group, version, kind, namespace, name string
}

func (k objKey) String() string { return k.kind + "/" + k.name }

// checkRelease checks the release as it now stands: the objects of its
// manifest (`helm get manifest`) are those `helm template` renders with
// the same values files, each exists on the API server with every rendered
// field as rendered, the release's label selects no other object of those
// kinds, and the API server admits its hooks (the `helm test` pod) in a
// server-side dry run. It returns the objects read from the server.
func (c *cluster) checkRelease(t *testing.T, h *helmRunner, rel, ns string, valuesFiles ...string) map[objKey]*unstructured.Unstructured {
	t.Helper()
	manifest := splitDocs(t, h.run(t, "get", "manifest", rel, "-n", ns))
	args := []string{"template", rel, chartDir, "-n", ns}
	for _, f := range valuesFiles {
		args = append(args, "-f", f)
	}
	var rendered []*unstructured.Unstructured
	for _, o := range splitDocs(t, h.run(t, args...)) {
		if _, hook := o.GetAnnotations()["helm.sh/hook"]; !hook {
			rendered = append(rendered, o)
		}
	}
	require.ElementsMatch(t, names(rendered), names(manifest), "helm get manifest vs helm template")
	require.NotEmpty(t, manifest)

	onServer := map[objKey]*unstructured.Unstructured{}
	byKind := map[schema.GroupVersionResource][]string{}
	for _, want := range manifest {
		k := c.key(t, want, ns)
		res := c.resource(t, want)
		got, err := c.dynamic.Resource(res).Namespace(k.namespace).Get(ctx(t), k.name, metav1.GetOptions{})
		require.NoError(t, err, "%s not on the API server", k)
		onServer[k] = got
		byKind[res] = append(byKind[res], k.name)
		if want.GetKind() == "Secret" {
			stringDataToData(want)
		}
		if diff := subset(want.Object, got.Object, ""); diff != "" {
			t.Errorf("%s on the server differs from the rendering: %s", k, diff)
		}
	}
	selector := "app.kubernetes.io/instance=" + rel
	for res, want := range byKind {
		list, err := c.dynamic.Resource(res).Namespace(ns).List(ctx(t), metav1.ListOptions{LabelSelector: selector})
		require.NoError(t, err)
		var got []string
		for _, o := range list.Items {
			if o.GetDeletionTimestamp() == nil {
				got = append(got, o.GetName())
			}
		}
		require.ElementsMatch(t, want, got, "%s labelled %s", res.Resource, selector)
	}

	hooks := splitDocs(t, h.run(t, "get", "hooks", rel, "-n", ns))
	for _, hook := range hooks {
		hook.SetNamespace(ns)
		_, err := c.dynamic.Resource(c.resource(t, hook)).Namespace(ns).Create(ctx(t), hook,
			metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		require.NoError(t, err, "API server refuses hook %s/%s", hook.GetKind(), hook.GetName())
	}
	return onServer
}

func (c *cluster) key(t *testing.T, o *unstructured.Unstructured, ns string) objKey {
	gvk := o.GroupVersionKind()
	if o.GetNamespace() != "" {
		ns = o.GetNamespace()
	}
	return objKey{gvk.Group, gvk.Version, gvk.Kind, ns, o.GetName()}
}

func (c *cluster) resource(t *testing.T, o *unstructured.Unstructured) schema.GroupVersionResource {
	t.Helper()
	gvk := o.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	require.NoError(t, err, "the API server does not serve %s", gvk)
	return m.Resource
}

// requireGone checks an object is deleted. A PersistentVolumeClaim keeps
// the kubernetes.io/pvc-protection finalizer until kube-controller-manager,
// which does not run here, removes it, so it may remain marked for
// deletion.
func (c *cluster) requireGone(t *testing.T, k objKey) {
	t.Helper()
	o := &unstructured.Unstructured{}
	o.SetGroupVersionKind(schema.GroupVersionKind{Group: k.group, Version: k.version, Kind: k.kind})
	got, err := c.dynamic.Resource(c.resource(t, o)).Namespace(k.namespace).Get(ctx(t), k.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return
	}
	require.NoError(t, err)
	require.NotNil(t, got.GetDeletionTimestamp(), "%s still exists and is not being deleted", k)
	require.Equal(t, "PersistentVolumeClaim", k.kind, "%s kept by finalizers %v", k, got.GetFinalizers())
}

func names(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}
