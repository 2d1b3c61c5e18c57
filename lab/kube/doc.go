// Package kube runs a real Kubernetes control plane — etcd, kube-apiserver
// and kube-controller-manager — inside an existing network namespace, for
// the lab and for tests that need Kubernetes. Nothing here is a mock: the
// binaries are the upstream ones built by scripts/build-controlplane.sh
// (etcd from the distribution).
//
// # Use
//
//	cp, err := kube.Start(ctx, kube.Config{
//		Dir:     "/run/weft-lab/weft/kube",
//		NetNS:   "weft-cp",                      // or a path, /run/netns/weft-cp
//		Address: netip.MustParseAddr("192.168.77.2"),
//		BinDir:  "bin",
//	})
//	// cp.AdminKubeconfig() is for clients inside the lab (server
//	// https://Address:6443); cp.AdminRESTConfig() dials from inside NetNS,
//	// so it works from the host even when Address is not routed there.
//	// The processes outlive the caller; later commands reattach with
//	// kube.Load(cfg), and `weft lab down` calls kube.Stop(dir).
//
// # Layout of Dir
//
//	pki/             ca.{crt,key}, apiserver.{crt,key}, admin.{crt,key},
//	                 controller-manager.{crt,key}, sa.{key,pub}
//	etcd/            etcd's data directory
//	admin.kubeconfig, controller-manager.kubeconfig
//	<component>.log, <component>.pid for etcd, kube-apiserver, kube-controller-manager
//
// The CA and the service-account key pair are kept across restarts (so
// tokens and kubeconfigs handed out stay valid, and etcd's data with them);
// the leaf certificates are issued anew on every Start, so a changed Address
// gets a matching serving certificate.
//
// # Design
//
// Planning is pure and unit-tested without root: Config.withDefaults and
// validate, the PKI (pki.go), the command lines (args.go) and the
// kubeconfigs (kubeconfig.go). Applying is thin (process.go,
// controlplane.go): start each process detached in its own session through
// `nsenter --net=…` (which execs, so the recorded pid is the component's
// own), record pid files, poll readiness with client-go, and kill by pid
// file — only a process whose command line is that component's and names
// Dir, so a recycled pid is never killed.
package kube
