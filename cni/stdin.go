package cni

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/containernetworking/cni/pkg/types"
)

// MaxConfigSize is the most bytes of network configuration weft-cni reads
// from stdin. A real configuration (with a prevResult) is a few KiB.
const MaxConfigSize = 1 << 20

// readConfig reads a network configuration from r, at most MaxConfigSize
// bytes; a longer one is code 7 naming the limit, and is not read to its
// end.
func readConfig(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxConfigSize+1))
	if err != nil {
		return nil, types.NewError(types.ErrIOFailure, "failed to read the network configuration from stdin", err.Error())
	}
	if len(b) > MaxConfigSize {
		return nil, tooLarge()
	}
	return b, nil
}

func tooLarge() error {
	return types.NewError(types.ErrInvalidNetworkConfig,
		fmt.Sprintf("invalid network configuration: larger than the %d-byte (1 MiB) limit", MaxConfigSize), "")
}

// screenConfig refuses, before skel sees them, configurations whose error
// skel would report under the wrong code: a missing cniVersion (skel
// takes it for 0.1.0 and answers code 1, "incompatible CNI versions").
// Input that does not parse is left to skel and ParseConfig (code 6).
func screenConfig(stdin []byte) error {
	var raw map[string]json.RawMessage
	if json.Unmarshal(stdin, &raw) != nil || raw == nil {
		return nil
	}
	var v string
	if b, ok := raw["cniVersion"]; !ok || (json.Unmarshal(b, &v) == nil && v == "") {
		return invalidField("cniVersion", "is required")
	}
	return nil
}

// screenStdin reads stdin for a command that takes a configuration,
// screens it, and hands what it read to skel through a pipe in place of
// os.Stdin.
func screenStdin() error {
	switch os.Getenv("CNI_COMMAND") {
	case "ADD", "DEL", "CHECK", "STATUS", "GC":
	default:
		return nil // VERSION reads no configuration; skel answers the rest
	}
	b, err := readConfig(os.Stdin)
	if err != nil {
		return err
	}
	if err := screenConfig(b); err != nil {
		return err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return types.NewError(types.ErrIOFailure, "failed to pass the network configuration on", err.Error())
	}
	go func() {
		_, _ = w.Write(b)
		_ = w.Close()
	}()
	os.Stdin = r
	return nil
}
