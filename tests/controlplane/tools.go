//go:build tools

// Package controlplane only pins modules: the upstream e2e suite, which
// scripts/build-controlplane.sh builds as a test binary (go test -c), so
// go.mod and go.sum hold every module it needs.
package controlplane

import _ "k8s.io/kubernetes/test/e2e"
