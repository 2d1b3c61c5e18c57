package peering

import (
	"errors"
	"testing"
)

// FuzzValidate: any input parses or is refused with an error, never
// panics, and validation is deterministic and all-or-nothing.
func FuzzValidate(f *testing.F) {
	f.Add(validFile)
	f.Add("peers: []\n")
	f.Add("peers:\n  - name: a\n    podCIDRs: [1.2.3.4/33, ::/0]\n    gateways: [{endpoint: '[::]:0'}]\n")
	f.Fuzz(func(t *testing.T, doc string) {
		file, err := ParseFile([]byte(doc))
		if err != nil {
			return
		}
		peers, err := file.Validate(east)
		_, again := file.Validate(east)
		if (err == nil) != (again == nil) || err != nil && err.Error() != again.Error() {
			t.Fatalf("not deterministic: %v / %v", err, again)
		}
		var probs Problems
		switch {
		case err != nil && !errors.As(err, &probs):
			t.Fatalf("error is not Problems: %v", err)
		case err != nil && (len(probs) == 0 || peers != nil):
			t.Fatalf("refused with %d problems and %d peers", len(probs), len(peers))
		case err == nil && len(peers) != len(file.Peers):
			t.Fatalf("accepted %d of %d peers", len(peers), len(file.Peers))
		}
		for _, p := range peers {
			if len(p.Gateways) == 0 || len(p.PodCIDRs) == 0 {
				t.Fatalf("accepted peer %q without gateways or pod CIDRs", p.Name)
			}
			_ = PlanPeering(View{Node: "n", ActiveGateway: "n"}, peers)
		}
	})
}
