package yamlfield

import (
	"strings"
	"testing"
)

type item struct {
	Name string `yaml:"name"`
	Port int    `yaml:"port"`
}

type doc struct {
	Items []item `yaml:"items"`
	Zone  string `yaml:"zone"`
}

const sample = `zone: a.b
items:
  - name: x
    port: 1
  - name: y
    port: 2
`

func TestIndex(t *testing.T) {
	ix := NewIndex([]byte(sample))
	for path, line := range map[string]int{
		"zone": 1, "items": 2, "items[0]": 3, "items[0].name": 3, "items[0].port": 4,
		"items[1].port": 6, "nope": 0,
	} {
		if got := ix.Line(path); got != line {
			t.Errorf("Line(%q) = %d, want %d", path, got, line)
		}
	}
	if got := ix.Path(5); got != "items[1].name" {
		t.Errorf("Path(5) = %q", got)
	}
	if got := ix.Rewrite("line 4: bad; line 99: other"); got != "items[0].port (line 4): bad; line 99: other" {
		t.Errorf("Rewrite = %q", got)
	}
	if got := NewIndex([]byte("{: [")).Line("zone"); got != 0 {
		t.Errorf("broken document indexed line %d", got)
	}
}

func TestDecodeStrict(t *testing.T) {
	tests := []struct {
		name, doc string
		wantErr   []string // substrings; none means success
	}{
		{name: "ok", doc: sample},
		{name: "empty", doc: "  \n"},
		{name: "unknown field", doc: "zone: a\nitems:\n  - name: x\n    prot: 1\n",
			wantErr: []string{"items[0].prot (line 4):", "field prot not found"}},
		{name: "wrong type", doc: "items:\n  - name: x\n    port: many\n",
			wantErr: []string{"items[0].port (line 3):", "cannot unmarshal"}},
		{name: "syntax", doc: "items: [\n", wantErr: []string{"yaml:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d doc
			err := DecodeStrict([]byte(tt.doc), &d)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	var d doc
	if err := DecodeStrict([]byte(sample), &d); err != nil || len(d.Items) != 2 || d.Items[1].Port != 2 || d.Zone != "a.b" {
		t.Errorf("decoded %+v, %v", d, err)
	}
}
