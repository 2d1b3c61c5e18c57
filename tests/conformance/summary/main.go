// summary prints what a run of the upstream e2e suite did, from its JUnit
// reports: counts, then every failed test by name.
package main

import (
	"fmt"
	"os"

	"github.com/weftnet/weft/tests/conformance"
)

func main() {
	r, err := conformance.Parse(os.Args[1:]...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "summary:", err)
		os.Exit(1)
	}
	fmt.Println("conformance:", r)
	for _, f := range r.Failures {
		fmt.Println("  FAILED", f)
	}
}
