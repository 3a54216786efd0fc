package chartcheck

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

var (
	repoRoot = filepath.Join("..", "..", "..")
	chartDir = filepath.Join("..", "rubato")

	toolsOnce sync.Once
	helmBin   string
	rubatoBin string
	toolsErr  error
	tmpDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
	os.Exit(code)
}

// tools provides helm (scripts/helm.sh, or $HELM) and builds rubato, once,
// for the tests that need them.
func tools(t *testing.T) (helm, rubato string) {
	t.Helper()
	toolsOnce.Do(func() {
		helmBin = os.Getenv("HELM")
		if helmBin == "" {
			out, err := exec.Command("bash", filepath.Join(repoRoot, "scripts", "helm.sh")).Output()
			if err != nil {
				toolsErr = fmt.Errorf("scripts/helm.sh: %w", err)
				return
			}
			helmBin = strings.TrimSpace(string(out))
		}
		if tmpDir, toolsErr = os.MkdirTemp("", "chartcheck-"); toolsErr != nil {
			return
		}
		rubatoBin = filepath.Join(tmpDir, "rubato")
		build := exec.Command("go", "build", "-o", rubatoBin, "./cmd/rubato")
		build.Dir = repoRoot
		if out, err := build.CombinedOutput(); err != nil {
			toolsErr = fmt.Errorf("build rubato: %w\n%s", err, out)
		}
	})
	require.NoError(t, toolsErr)
	return helmBin, rubatoBin
}

// object is one rendered document decoded into its API type.
type object struct {
	kind, name string
	obj        any
}

// decodeStrict decodes one rendered document into the k8s.io/api (or
// prometheus-operator) type of its kind: unknown and duplicated fields
// fail, and so does a kind this check does not know.
func decodeStrict(doc []byte) (object, error) {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return object{}, err
	}
	var obj any
	switch meta.APIVersion + "/" + meta.Kind {
	case "v1/ConfigMap":
		obj = &corev1.ConfigMap{}
	case "v1/Secret":
		obj = &corev1.Secret{}
	case "v1/Service":
		obj = &corev1.Service{}
	case "v1/ServiceAccount":
		obj = &corev1.ServiceAccount{}
	case "v1/PersistentVolumeClaim":
		obj = &corev1.PersistentVolumeClaim{}
	case "v1/Pod":
		obj = &corev1.Pod{}
	case "apps/v1/StatefulSet":
		obj = &appsv1.StatefulSet{}
	case "apps/v1/Deployment":
		obj = &appsv1.Deployment{}
	case "policy/v1/PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	case "autoscaling/v2/HorizontalPodAutoscaler":
		obj = &autoscalingv2.HorizontalPodAutoscaler{}
	case "monitoring.coreos.com/v1/ServiceMonitor":
		obj = &monitoringv1.ServiceMonitor{}
	default:
		return object{}, fmt.Errorf("unexpected kind %s %s", meta.APIVersion, meta.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return object{}, fmt.Errorf("%s %s: %w", meta.Kind, meta.Metadata.Name, err)
	}
	if meta.Metadata.Name == "" || meta.Metadata.Namespace == "" {
		return object{}, fmt.Errorf("%s without name or namespace", meta.Kind)
	}
	return object{kind: meta.Kind, name: meta.Metadata.Name, obj: obj}, nil
}

// splitDocs splits `helm template` output into documents.
func splitDocs(out []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(out, []byte("\n---")) {
		// Drop the "# Source:" comment lines; keep the YAML.
		var keep []string
		for _, l := range strings.Split(string(d), "\n") {
			if !strings.HasPrefix(l, "# Source:") {
				keep = append(keep, l)
			}
		}
		if s := strings.TrimSpace(strings.Join(keep, "\n")); s != "" && s != "---" {
			docs = append(docs, []byte(s))
		}
	}
	return docs
}

// helm runs the helm binary with args, returning combined output.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	helmPath, _ := tools(t)
	cmd := exec.Command(helmPath, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// render lints and renders the chart with values (YAML), and decodes every
// document strictly.
func render(t *testing.T, values string) map[string]object {
	t.Helper()
	vf := filepath.Join(t.TempDir(), "values.yaml")
	require.NoError(t, os.WriteFile(vf, []byte(values), 0o644))
	out, err := helm(t, "lint", "--strict", chartDir, "-f", vf)
	require.NoError(t, err, "helm lint --strict:\n%s", out)
	out, err = helm(t, "template", "rel", chartDir, "--namespace", "traces", "-f", vf)
	require.NoError(t, err, "helm template:\n%s", out)
	objs := map[string]object{}
	for _, doc := range splitDocs([]byte(out)) {
		o, err := decodeStrict(doc)
		require.NoError(t, err, "document:\n%s", doc)
		key := o.kind + "/" + o.name
		require.NotContains(t, objs, key, "rendered twice")
		objs[key] = o
	}
	return objs
}

// verifyConfig requires `rubato -config.verify` to accept the ConfigMap's
// two files, run with args (a container's arguments, its -config.file
// pointed at the copy).
func verifyConfig(t *testing.T, cm *corev1.ConfigMap, args ...string) {
	t.Helper()
	out, err := runVerify(t, cm, args...)
	require.NoError(t, err, "rubato %v -config.verify rejected the chart's config:\n%s\n--- rubato.yaml:\n%s--- overrides.yaml:\n%s", args, out, cm.Data["rubato.yaml"], cm.Data["overrides.yaml"])
	require.Equal(t, "config OK\n", out)
}

// runVerify runs `rubato -config.verify` on the ConfigMap's two files,
// with args as a container runs it: its -config.file=/conf/rubato.yaml
// is pointed at a copy (default: just -config.file and -config.expand-env).
func runVerify(t *testing.T, cm *corev1.ConfigMap, args ...string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	cfg, over := filepath.Join(dir, "rubato.yaml"), filepath.Join(dir, "overrides.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(cm.Data["rubato.yaml"]), 0o644))
	require.NoError(t, os.WriteFile(over, []byte(cm.Data["overrides.yaml"]), 0o644))
	if len(args) == 0 {
		args = []string{"-config.file=/conf/rubato.yaml", "-config.expand-env"}
	}
	var run []string
	for _, a := range args {
		if a == "-config.file=/conf/rubato.yaml" {
			a = "-config.file=" + cfg
		}
		run = append(run, a)
	}
	// The per-tenant file is mounted at /runtime-config in the pod; here
	// the flag (which wins over the file) points at the copy.
	run = append(run, "-config.per-user-override-config="+over, "-config.verify")
	_, rubatoPath := tools(t)
	out, err := exec.Command(rubatoPath, run...).CombinedOutput()
	return string(out), err
}
