package nftable

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/weftnet/weft/internal/nftable/nftabletest"
)

// recorder is the shared fake.
type recorder = nftabletest.Recorder

var (
	_ Conn   = (*recorder)(nil)
	_ Reader = (*recorder)(nil)
)

func testTable() Table {
	t := &nftables.Table{Name: "weft-x", Family: nftables.TableFamilyIPv4}
	a := &nftables.Chain{Name: "a", Table: t}
	b := &nftables.Chain{Name: "b", Table: t}
	return Table{Table: t, Chains: []*nftables.Chain{a, b}, Rules: []*nftables.Rule{
		{Table: t, Chain: a, UserData: []byte("a1")},
		{Table: t, Chain: b, UserData: []byte("b1")},
		{Table: t, Chain: b, UserData: []byte("b2")},
	}}
}

func TestReplaceIsOneBatch(t *testing.T) {
	r := &recorder{}
	if err := Replace(r, testTable()); err != nil {
		t.Fatal(err)
	}
	want := "add table weft-x,del table weft-x,add table weft-x,add chain a,add chain b,add rule a,add rule b,add rule b,flush"
	if got := strings.Join(r.Ops, ","); got != want {
		t.Errorf("ops\n got %s\nwant %s", got, want)
	}
	r = &recorder{FlushErr: errors.New("EPERM")}
	if err := Replace(r, testTable()); err == nil || !strings.Contains(err.Error(), "weft-x") {
		t.Errorf("a failed flush: %v, want an error naming the table", err)
	}
}

func TestRemove(t *testing.T) {
	r := &recorder{}
	if err := Remove(r, nftables.TableFamilyIPv4, "weft-x"); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.Ops, ","); got != "add table weft-x,del table weft-x,flush" {
		t.Errorf("ops %s", got)
	}
}

func TestCurrent(t *testing.T) {
	tb := testTable()
	kernel := func(a, b []string) *recorder {
		r := &recorder{Rules: map[string][]*nftables.Rule{}}
		for name, fps := range map[string][]string{"a": a, "b": b} {
			if fps == nil {
				continue // chain missing
			}
			r.Rules[name] = []*nftables.Rule{}
			for _, fp := range fps {
				r.Rules[name] = append(r.Rules[name], &nftables.Rule{UserData: []byte(fp)})
			}
		}
		return r
	}
	tests := []struct {
		name string
		a, b []string
		want bool
	}{
		{"exactly", []string{"a1"}, []string{"b1", "b2"}, true},
		{"a chain missing", []string{"a1"}, nil, false},
		{"a rule missing", []string{"a1"}, []string{"b1"}, false},
		{"a rule added by hand", []string{"a1", "x"}, []string{"b1", "b2"}, false},
		{"another fingerprint", []string{"a1"}, []string{"b1", "b3"}, false},
		{"flushed chain", []string{}, []string{"b1", "b2"}, false},
	}
	for _, tt := range tests {
		if got := Current(kernel(tt.a, tt.b), tb); got != tt.want {
			t.Errorf("%s: Current = %v, want %v", tt.name, got, tt.want)
		}
	}
}
