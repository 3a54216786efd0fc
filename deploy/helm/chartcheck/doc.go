// Package chartcheck checks the Helm chart deploy/helm/rubato offline, in a
// module of its own so Rubato's main module does not depend on k8s.io/*.
//
// For every case of a matrix of values (storage: local, S3 with a Secret,
// S3 with an IAM role, an external MinIO, minio.enabled; multitenancy on
// and off; each receiver on and off; every optional part on) it runs
// `helm lint --strict` and `helm template` with Helm built from Go modules
// (scripts/helm.sh), and then:
//
//   - decodes every rendered document strictly into its k8s.io/api type
//     (or prometheus-operator's ServiceMonitor): an unknown or duplicated
//     field, or a kind the check does not know, fails;
//   - runs `rubato -config.verify` on the ConfigMap's config and per-tenant
//     overrides file, so Rubato itself accepts what the chart renders;
//   - checks what the values promise: Service and container ports for
//     exactly the enabled receivers, probes on /ready, the security
//     contexts, credentials from the named Secret, the `helm test` pod.
//
// It also keeps the chart README's values table equal to the one
// generated from values.yaml (go test -run TestValuesTable -update
// rewrites it). Invariant: every leaf of values.yaml has a `# --`
// description.
package chartcheck
