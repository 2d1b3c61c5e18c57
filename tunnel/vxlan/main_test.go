package vxlan

import (
	"os"
	"testing"

	"github.com/weftnet/weft/tunnel/internal/nstest"
)

func TestMain(m *testing.M) {
	nstest.MaybeRunHelper(New) // namespace tests re-execute this binary as a node
	os.Exit(m.Run())
}
