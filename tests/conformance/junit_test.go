package conformance

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// A report as ginkgo v2 writes it for e2e.test --report-dir.
const sample = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="5" disabled="3" errors="0" failures="1" time="42.1">
  <testsuite name="Kubernetes e2e suite" package="/e2e" tests="5" disabled="3" skipped="0" errors="0" failures="1" time="42.1">
    <testcase name="[SynchronizedBeforeSuite]" classname="Kubernetes e2e suite" status="passed" time="1.2"></testcase>
    <testcase name="[It] [sig-network] DNS should provide DNS for the cluster [Conformance]" classname="Kubernetes e2e suite" status="passed" time="9.1"><system-err>ok</system-err></testcase>
    <testcase name="[It] [sig-network] Services should serve a basic endpoint from pods [Conformance]" classname="Kubernetes e2e suite" status="failed" time="30.0"><failure message="timed out" type="failed">details</failure></testcase>
    <testcase name="[It] [sig-storage] something" classname="Kubernetes e2e suite" status="skipped" time="0"><skipped message="skipped"></skipped></testcase>
    <testcase name="[ReportAfterSuite] Kubernetes e2e suite report" classname="Kubernetes e2e suite" status="passed" time="0"></testcase>
  </testsuite>
</testsuites>`

func TestParse(t *testing.T) {
	f := filepath.Join(t.TempDir(), "junit_01.xml")
	if err := os.WriteFile(f, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	if r.Ran != 2 || r.Passed != 1 || r.Failed != 1 || r.Skipped != 1 {
		t.Errorf("report = %s", r)
	}
	if !slices.Equal(r.Failures, []string{"[It] [sig-network] Services should serve a basic endpoint from pods [Conformance]"}) {
		t.Errorf("failures = %q", r.Failures)
	}
	if _, err := Parse(); err == nil {
		t.Error("no files: no error")
	}
	if err := os.WriteFile(f, []byte("<testsuites><testsuite>"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(f); err == nil {
		t.Error("truncated report: no error")
	}
}
