package peering

import (
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong with a peering file.
type Problem struct {
	// Field is the path of the offending field, e.g. "peers[1].podCIDRs[0]".
	Field string
	// Line is the field's line in the file, 0 when unknown.
	Line int
	// Clusters names the clusters involved, sorted (the local one too when
	// it is part of the conflict).
	Clusters []string
	// Message says what is wrong, naming the clusters.
	Message string
}

func (p Problem) String() string {
	if p.Line > 0 {
		return fmt.Sprintf("%s (line %d): %s", p.Field, p.Line, p.Message)
	}
	return p.Field + ": " + p.Message
}

// Problems is every problem Validate found, in file order. It is an error.
type Problems []Problem

func (ps Problems) Error() string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return fmt.Sprintf("%d problem(s) in peering file:\n  %s", len(ps), strings.Join(s, "\n  "))
}

// sort orders problems by field path (peers[2] before peers[10]), then
// message, and drops exact duplicates.
func (ps Problems) sort() Problems {
	slices.SortFunc(ps, func(a, b Problem) int {
		if c := comparePaths(a.Field, b.Field); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
	return slices.CompactFunc(ps, func(a, b Problem) bool {
		return a.Field == b.Field && a.Message == b.Message
	})
}

// comparePaths compares field paths with runs of digits compared as
// numbers.
func comparePaths(a, b string) int {
	for a != "" && b != "" {
		da, db := digitRun(a), digitRun(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := len(na) - len(nb); c != 0 {
				return c
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return int(a[0]) - int(b[0])
		}
		a, b = a[1:], b[1:]
	}
	return len(a) - len(b)
}

func digitRun(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}
