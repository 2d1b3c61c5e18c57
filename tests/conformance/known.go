package conformance

// Known are the upstream tests known to fail against a weft lab, by the
// name JUnit gives them, with the reason (docs/conformance.md has them
// all). A run fails on any other failure; a known one that passes is
// reported so the list shrinks.
var Known = map[string]string{}

// Unexpected are r's failures that Known does not list.
func (r Report) Unexpected() []string {
	var out []string
	for _, f := range r.Failures {
		if _, ok := Known[f]; !ok {
			out = append(out, f)
		}
	}
	return out
}

// Fixed are the Known failures that passed in r.
func (r Report) Fixed() []string {
	var out []string
	for _, p := range r.Passes {
		if _, ok := Known[p]; ok {
			out = append(out, p)
		}
	}
	return out
}
