package peering

import (
	"os"
	"strings"
	"testing"
)

// TestDocsExample keeps the peering file shown in docs/peering.md valid.
func TestDocsExample(t *testing.T) {
	b, err := os.ReadFile("../docs/peering.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	start := strings.Index(doc, "```yaml\npeers:\n")
	if start < 0 {
		t.Fatal("docs/peering.md shows no peering file")
	}
	example := doc[start+len("```yaml\n"):]
	example = example[:strings.Index(example, "```")]
	f, err := ParseFile([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	peers, err := f.Validate(east)
	if err != nil {
		t.Fatalf("the documented example is refused: %v", err)
	}
	if len(peers) != 2 {
		t.Errorf("documented example has %d peers", len(peers))
	}
}
