// Package kubelet runs a real node of Kubernetes inside a lab node's
// network namespace: containerd (Debian's 1.6, with runc) and a kubelet
// built from the same module as the lab's control plane. containerd's CRI
// calls weft-cni to wire every pod sandbox, as on any cluster.
//
// # Shape
//
// Planning is pure and unit-tested (Config.validate, Files, the command
// lines, Images): the containerd and kubelet configurations, the values the
// kubelet insists on seeing in /proc/sys, and the images.
//
// Applying is thin. Start writes the files, creates the node's cgroups and
// starts one supervisor per node, detached: `weft lab node-runtime` entered
// into the node's network namespace and a private mount namespace
// (`unshare --mount --propagation slave`). The supervisor (Run) bind-mounts
// the sysctl values over /proc/sys in that mount namespace only, so the
// host is never written; starts containerd, imports the images, starts the
// kubelet, restarts either when it dies, and on SIGTERM stops the kubelet,
// kills every container, then containerd and its shims. Stop ends the
// supervisor by its pid file and then sweeps what a crash may have left:
// processes that name the node's directory, processes in the node's
// cgroups, and the cgroups themselves. Mounts need no sweep: they live in
// the supervisor's mount namespace, which goes with its last process.
//
// # What this machine needed
//
//   - cgroup v1 without systemd: cgroupDriver cgroupfs, failCgroupV1 false,
//     and a cgroupRoot of its own per node in every hierarchy;
//   - runc may not lower oom_score_adj here: restrict_oom_score_adj;
//   - several kubelets and containerds on one machine: per-node root and
//     state directories, sockets, runc root, kubelet root and pod logs, and
//     network namespaces mounted under containerd's state directory.
package kubelet
