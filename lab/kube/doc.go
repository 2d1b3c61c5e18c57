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
//	// An agent's kubeconfig, as its DaemonSet's ServiceAccount:
//	err = cp.ServiceAccountKubeconfig(ctx, kube.TokenKubeconfig{
//		Namespace: "kube-system", ServiceAccount: "weft", Out: ".../n1/kubeconfig"})
//	// The processes outlive the caller; later commands reattach with
//	// kube.Load(cfg); cp.Stop() or, after a crash, kube.Stop(dir) ends them.
//
// Start waits (Config.StartTimeout, 2 minutes by default) for etcd's
// /health, kube-apiserver's /readyz and the "default" ServiceAccount that
// kube-controller-manager's controllers create; about 9 seconds here.
//
// Known limits: Debian's etcd 3.4.23 lacks RequestWatchProgress, so
// kube-apiserver disables watch-list streaming and clients fall back to
// LIST+WATCH (the controller manager logs this once per informer). The
// node lifecycle controller is disabled (no kubelets post heartbeats), so
// Nodes the lab creates are never tainted or have their pods evicted.
//
// # Layout of Dir
//
//	pki/             ca.{crt,key}, apiserver.{crt,key}, admin.{crt,key},
//	                 controller-manager.{crt,key}, sa.{key,pub}
//	etcd/            etcd's data directory
//	controller-manager-serving/   the controller manager's self-signed serving cert
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
