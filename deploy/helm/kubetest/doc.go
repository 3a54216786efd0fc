// Package kubetest installs the Helm chart deploy/helm/rubato on a real
// Kubernetes API server: kube-apiserver and etcd built from Go modules
// (scripts/kube.sh), on 127.0.0.1. It is a module of its own, so
// k8s.io/kubernetes and etcd stay out of Rubato's go.mod; its go.mod's
// `tool` lines are the build pins scripts/kube.sh uses (k8s.io/kubernetes
// v1.36.3 with its staging modules replaced by their v0.36.3 releases, and
// go.etcd.io/etcd/server/v3 at the version that release requires).
//
// TestHelmInstallUpgrade starts etcd (temporary data dir, free ports) and
// kube-apiserver against it (a generated serving certificate and
// service-account key, a static token of a system:masters user, RBAC
// authorization, the default admission plugins), waits for /readyz, writes
// a kubeconfig, and then, for each row of a table of values (single-binary
// with an external MinIO, with minio.enabled, with S3 and an existing
// Secret; distributed with an external MinIO), with the helm binary of
// scripts/helm.sh:
//
//   - `helm install`s the chart into a namespace of its own;
//   - checks the release: `helm get manifest` names the same objects as
//     `helm template` with the same values; each object exists on the API
//     server with every rendered field as rendered (the server may add
//     defaults); the release's label selects no other object of those
//     kinds; and the API server admits the `helm test` pod in a server-side
//     dry run;
//   - `helm upgrade`s with changed values (a config change, a receiver off,
//     new resources, per row more) and checks the release again, that
//     objects the upgrade drops are deleted, and the changes themselves:
//     the pod template's checksum/config annotation changed, the receiver's
//     Service port is gone, the new requests are set;
//   - `helm uninstall`s and checks every object is deleted.
//
// Nothing runs the objects: there is no kubelet, scheduler or
// controller-manager, so no pod starts, and installs do not use --wait
// (no workload would ever become ready). What is proved is that the API
// server, with its validation and admission, accepts the chart's objects
// and Helm's install, upgrade and uninstall of them. Without the
// controller-manager, the test creates each namespace's default
// ServiceAccount itself, and a deleted PersistentVolumeClaim keeps its
// pvc-protection finalizer (it counts as deleted once marked). The
// ServiceMonitor stays off: the API server has no monitoring.coreos.com
// CRD (deploy/helm/chartcheck decodes it strictly into the
// prometheus-operator type instead).
//
// Cost: scripts/kube.sh cold (fresh GOCACHE, modules downloaded) took
// 17m40s wall, 17.5 CPU-minutes, on this 2-core machine shared with other
// work (and 28m12s under heavier load); cached, it returns at once. The
// test itself runs in about 35 s (kube-apiserver ready in ~4 s, 4-13 s
// per row); compiling this module cold (client-go) for go vet and go test
// took 7m52s wall, 7.5 CPU-minutes.
//
// The binaries take long to build, so the test does not build them: it
// skips, naming the scripts, when one is missing, and fails instead when
// CI=true. KUBE_BIN_DIR and HELM override where they are looked for.
package kubetest
