// Package clusterset shares exported Services between peered clusters,
// for the clusterset.local zone of the Multi-Cluster Services DNS
// specification (KEP-1645), without a broker.
//
// The active gateway of each cluster serves its cluster's exports as one
// JSON Document on its peering tunnel address (Handler, GET /v1/exports).
// The active gateway of every other cluster fetches it (Fetch), plans the
// derived EndpointSlices that carry it into its own cluster (PlanImports)
// and applies them (SyncImports); every node's DNS proxy answers
// clusterset.local from its local exported Services and those slices.
//
// A Service is exported when it carries the annotation
// weft.dev/export: "true", or when a ServiceExport
// (multicluster.x-k8s.io/v1alpha1) of the same namespace and name exists.
//
// The active gateway also gives every ClusterSetIP Service exported here
// or imported one clusterset IP of this cluster (AllocateIPs), and
// publishes the table as one ConfigMap (SyncIPs) that every node's DNS
// proxy answers and Service proxy serves (ips.go).
//
// Planning is pure and table-tested (Exports, Document.Validate,
// PlanImports, planSync, AllocateIPs); the HTTP handler, the fetch and
// the appliers are thin. A Document from another cluster is untrusted input: it is decoded
// strictly, bounded in size and validated whole before anything of it is
// applied, and every error names the field.
package clusterset
