package clusterset

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to what a gateway does with a peer's
// answer: decode, then plan the imports. Nothing may panic; what Decode
// accepts must validate, plan, and encode back to a document Decode
// accepts again.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"cluster":"west-1","services":[]}`,
		`{"cluster":"west-1","services":[{"namespace":"shop","name":"web","type":"ClusterSetIP","clusterIPs":["10.97.0.10","fd00::10"],"ports":[{"name":"http","protocol":"TCP","port":80}],"endpoints":[{"ip":"10.245.1.5"}]}]}`,
		`{"cluster":"west-1","services":[{"namespace":"shop","name":"db","type":"Headless","endpoints":[{"ip":"10.245.1.8","hostname":"db-0"},{"ip":"fd00::8"}]}]}`,
		`{"cluster":"west-1","services":[{"namespace":"shop","name":"db","type":"Headless","endpoints":[{"ip":"::ffff:1.2.3.4"}]}]}`,
		`{"cluster":"","services":null}`,
		`[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		doc, err := Decode(bytes.NewReader(b))
		if err != nil {
			return
		}
		if err := doc.Validate(); err != nil {
			t.Fatalf("Decode accepted a document Validate refuses: %v", err)
		}
		PlanImports(doc.Cluster, doc, func(string) bool { return true }, nil)
		out, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(bytes.NewReader(out)); err != nil {
			t.Fatalf("a decoded document does not decode again: %v\n%s", err, out)
		}
	})
}
