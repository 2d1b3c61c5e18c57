package policy

import (
	"github.com/google/nftables"

	"github.com/weftnet/weft/internal/nftable"
)

// Remove deletes weft's policy table; a missing table is not an error.
func Remove(conn Conn) error { return nftable.Remove(conn, nftables.TableFamilyIPv4, TableName) }

// NewConn opens a netlink connection for nftables (in the current network
// namespace unless an option says otherwise) whose buffers hold a large
// cluster's batch (nftable.NewLargeConn).
func NewConn(opts ...nftables.ConnOption) (*nftables.Conn, error) {
	return nftable.NewLargeConn(opts...)
}
