// Package dnsproxy is weft's node-local DNS server. It answers the cluster
// zone (cluster.local by default) from the agent's informer caches, per the
// Kubernetes DNS-Based Service Discovery specification, the clusterset
// zone (clusterset.local: Services exported by this and the peered
// clusters, per the multicluster DNS specification of KEP-1645), and
// caches and forwards every other name to upstream resolvers.
//
// A query passes through a chain of handlers, each of which answers or
// hands the query to the next:
//
//	guard (access, opcode, class, type, EDNS) → zone cache → cluster zone → clusterset zone → cache → forward
//
// The guard lives in Server; truncation to the client's UDP size and the
// query metrics are applied once, on the way out, by the writer Server
// hands to the chain. Over UDP, a plain query whose answer either cache
// holds is answered from the answer's stored bytes, patched for the
// client, without unpacking the query or running the chain (wirepath.go,
// cachewire.go); every other query takes the chain. The cluster zone reads a small interface (Records),
// so its answers are table-tested without an API server; KubeRecords is
// the informer-backed implementation. The clusterset zone reads SetRecords
// likewise; ClustersetRecords implements it over KubeRecords (this
// cluster's exported Services) and the derived EndpointSlices of imports.
//
// Concurrency: handlers are called concurrently, by one goroutine per UDP
// socket (udpbatch.go), a goroutine per query that waits for upstreams,
// and the miekg/dns TCP server. The cluster zone only reads Records
// (KubeRecords guards its maps with one RWMutex); the cache guards its LRU
// with one mutex, never held across I/O, and never changes an entry once
// stored (the wire path reads its bytes without the lock).
package dnsproxy
