// Package policy enforces Kubernetes NetworkPolicy (networking.k8s.io/v1)
// on one node with nftables.
//
// Compile is pure: from the cluster's NetworkPolicies, Pods and Namespaces
// and this node's name it computes a Ruleset, the whole desired state of the
// node's policy table. Render turns a Ruleset into nftables objects, and
// Applier sends them to the kernel in one atomic netlink batch.
//
// # Shape of the table (ip weft-policy)
//
// Policy is enforced where traffic is forwarded: a pod's egress on the
// node the pod runs on, its ingress on the node it runs on. Traffic that
// the node itself sends to its pods (kubelet probes) goes through OUTPUT and
// is never filtered; neither is pod traffic to its own node (INPUT), as the
// NetworkPolicy documentation requires.
//
//	chain forward (hook forward, priority filter, policy accept)
//	  ct state established,related accept        replies to allowed flows
//	  ip saddr vmap @egress                      local pod isolated for egress -> jump its egress chain
//	  ip daddr vmap @ingress                     local pod isolated for ingress -> jump its ingress chain
//	chain eg-<hash> / in-<hash>                  one per distinct list of allow rules
//	  ip daddr @<peers> meta l4proto tcp th dport 80 return|accept
//	  counter name <chain> drop                  default deny, counted per chain
//
// Peers (pods selected by podSelector/namespaceSelector, ipBlocks minus
// their excepts) are named interval sets, one per policy rule, and the
// isolated pods are elements of the two verdict maps; pods with the same
// allow rules share a chain. So a pod or label change that does not change
// any chain's rules only changes set and map elements: the Applier then
// updates those in place (counters keep counting) instead of replacing the
// table. Pods that no policy selects are in neither map and pass.
//
// What the API accepts but weft cannot enforce exactly is reported in
// Ruleset.Problems and never silently widened: a rule that cannot be
// compiled is left out, so the pods it selects stay isolated (fail closed).
// A policy whose own podSelector cannot be parsed fails Compile, and the
// caller keeps the previous ruleset.
package policy
