// Package peering is the pure core of multi-cluster peering: the bundle a
// cluster exports, the peering file an operator writes, its validation,
// the choice of the local active gateway and of the remote gateway to use,
// and the plan of data-plane entries that follows from them. Nothing here
// touches the network or the kernel; the agent applies the plan.
//
// Shape of the data plane this package plans for:
//
//   - Each cluster has one active gateway at a time, elected from the
//     eligible live members by ElectGateway, which every node computes
//     alike from gossip.
//   - The active gateway runs a separate WireGuard device for peering (its
//     own key and port, the ones in the exported bundle). It has one
//     WireGuard peer per gateway listed in each remote bundle; only the
//     chosen gateway of each remote cluster (ChooseRemoteGateway) carries
//     AllowedIPs, and those are exactly the remote bundle's pod and service
//     CIDRs, so WireGuard itself drops packets from undeclared sources.
//   - Every other node routes the remote CIDRs to its cluster's active
//     gateway over the normal overlay.
package peering
