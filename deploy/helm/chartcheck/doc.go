// Package chartcheck checks the Helm chart deploy/helm/rubato offline, in a
// module of its own so Rubato's main module does not depend on k8s.io/*.
//
// For every case of a matrix of values, in both deployment modes
// (storage: local — single binary only —, S3 with a Secret, S3 with an
// IAM role, an external MinIO, minio.enabled; multitenancy on and off;
// each receiver on and off; autoscaling on; two query-frontends; every
// optional part on) it
// runs `helm lint --strict` and `helm template` with Helm built from Go
// modules (scripts/helm.sh), and then:
//
//   - decodes every rendered document strictly into its k8s.io/api type
//     (or prometheus-operator's ServiceMonitor): an unknown or duplicated
//     field, or a kind the check does not know, fails;
//   - runs `rubato -config.verify` on the ConfigMap's config and per-tenant
//     overrides file, so Rubato itself accepts what the chart renders; in
//     distributed mode once per workload, with that container's own args
//     (its -target);
//   - checks what the values promise: Service and container ports for
//     exactly the enabled receivers, probes on /ready, the security
//     contexts, credentials from the named Secret, the `helm test` pod;
//   - in distributed mode, checks the wiring between objects by label
//     selection (k8s.io/apimachinery's selectors) and by resolving the
//     cluster DNS names the config holds to rendered Services: each
//     Service reaches pods with its target ports, the gossip Service is
//     headless and selects exactly the components running a ring, the
//     queriers' frontend address reaches the query-frontend's gRPC port
//     through a headless Service (its name resolves to every frontend pod),
//     the WAL is on the ingesters' volumeClaimTemplate, the PDB, the
//     anti-affinity, the HPAs and the ServiceMonitor select what they
//     should.
//
// NOTES.txt is rendered (wrapped into a template of a copy of the chart,
// since `helm template` leaves it out) and checked in both modes, and
// values the chart cannot honour must fail to render with a message.
//
// Helm runs as a subprocess, so `go test`'s cache does not see chart
// edits: run with -count=1 after changing the chart.
//
// It also keeps the chart README's values table equal to the one
// generated from values.yaml (go test -run TestValuesTable -update
// rewrites it). Invariant: every leaf of values.yaml has a `# --`
// description.
package chartcheck
