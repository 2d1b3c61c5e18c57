// Package lab runs a multi-node weft cluster inside network namespaces on
// one Linux machine, leaving the host untouched: every interface, route and
// process lives in a namespace the lab created, and every file under the
// lab's state directory (/run/weft-lab/<name>/).
//
// The package is split in two. The planner (spec.go, layout.go,
// underlay.go's address plan, agentconfig.go, conflist.go, commands.go) is
// pure: it derives names, addresses, per-node paths, agent configs and the
// exact `ip` commands from a Spec and is unit-tested without root. The
// applier (runner.go, netns.go, agentproc.go, ready.go, cni.go, pods.go,
// nodes.go, lab.go, status.go, exec.go, check.go) is
// thin: it runs those commands, starts and kills agents and records what it
// made in state.json so that `down` can remove it even after a crash.
//
// Topology of a lab named "weft" with two nodes:
//
//	weft-underlay   bridge br0, ports v1, v2, vinet
//	weft-inet       eth0 192.168.77.254/24, lo 203.0.113.1/32 ("the internet")
//	weft-n1         eth0 192.168.77.11/24, default via .254, agent n1
//	weft-n2         eth0 192.168.77.12/24, default via .254, agent n2
//	weft-n1-p1      a pod on n1, wired by weft-cni through libcni
package lab
