// Package conformance reads the JUnit reports of the upstream Kubernetes
// e2e suite (e2e.test --report-dir) run against a weft lab, and holds the
// tests known to fail there, with the reason of each (docs/conformance.md).
package conformance

import (
	"encoding/xml"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
)

// Report is what a run of e2e.test did.
type Report struct {
	Ran, Passed, Failed, Skipped int
	// Passes and Failures are the names of the tests that passed and that
	// failed, sorted.
	Passes, Failures []string
}

type junitSuites struct {
	Suites []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Cases []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name    string    `xml:"name,attr"`
	Status  string    `xml:"status,attr"`
	Failure *struct{} `xml:"failure"`
	Error   *struct{} `xml:"error"`
	Skipped *struct{} `xml:"skipped"`
}

// Parse reads e2e.test's JUnit files. Ginkgo's own report entries
// ([SynchronizedBeforeSuite], [ReportAfterSuite] …) are not tests and are
// left out unless they failed.
func Parse(files ...string) (Report, error) {
	if len(files) == 0 {
		return Report{}, errors.New("no JUnit report")
	}
	var r Report
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return Report{}, err
		}
		var doc junitSuites
		if err := xml.Unmarshal(b, &doc); err != nil {
			return Report{}, fmt.Errorf("%s: %w", f, err)
		}
		for _, s := range doc.Suites {
			for _, c := range s.Cases {
				failed := c.Failure != nil || c.Error != nil || c.Status == "failed" || c.Status == "panicked" || c.Status == "timedout"
				internal := strings.HasPrefix(c.Name, "[SynchronizedBeforeSuite]") || strings.HasPrefix(c.Name, "[SynchronizedAfterSuite]") ||
					strings.HasPrefix(c.Name, "[ReportAfterSuite]") || strings.HasPrefix(c.Name, "[ReportBeforeSuite]") ||
					strings.HasPrefix(c.Name, "[BeforeSuite]") || strings.HasPrefix(c.Name, "[AfterSuite]")
				switch {
				case internal && !failed:
				case c.Skipped != nil || c.Status == "skipped" || c.Status == "pending":
					r.Skipped++
				case failed:
					r.Ran++
					r.Failed++
					r.Failures = append(r.Failures, c.Name)
				default:
					r.Ran++
					r.Passed++
					r.Passes = append(r.Passes, c.Name)
				}
			}
		}
	}
	slices.Sort(r.Passes)
	slices.Sort(r.Failures)
	return r, nil
}

// String is the summary line.
func (r Report) String() string {
	return fmt.Sprintf("%d ran: %d passed, %d failed; %d skipped", r.Ran, r.Passed, r.Failed, r.Skipped)
}
