package lab

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// Runner runs commands. The real one execs; tests use a fake.
type Runner interface {
	// Run runs argv and returns its stdout. A failure names the command
	// and carries its stderr.
	Run(ctx context.Context, argv ...string) ([]byte, error)
}

// ExecRunner runs commands with os/exec.
type ExecRunner struct{}

var _ Runner = ExecRunner{}

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, argv ...string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, argv[0], argv[1:]...)
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = strings.TrimSpace(stdout.String())
		}
		return stdout.Bytes(), fmt.Errorf("`%s` failed: %w: %s", strings.Join(argv, " "), err, msg)
	}
	return stdout.Bytes(), nil
}

// runAll runs cmds in order and stops at the first failure.
func runAll(ctx context.Context, r Runner, cmds []Cmd) error {
	for _, c := range cmds {
		if _, err := r.Run(ctx, c...); err != nil {
			return err
		}
	}
	return nil
}
