//go:build !linux

package cni

import (
	"errors"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/weftnet/weft/cni/ipam"
)

// errUnsupported is what every data path call returns off Linux.
var errUnsupported = errors.New("weft-cni: the data path needs Linux (network namespaces and netlink)")

type unsupportedDataplane struct{}

func newLinuxDataplane() Dataplane { return unsupportedDataplane{} }

func (unsupportedDataplane) CheckNetNS(string) error { return errUnsupported }
func (unsupportedDataplane) Add(string, Plan) (*current.Interface, *current.Interface, error) {
	return nil, nil, errUnsupported
}
func (unsupportedDataplane) Del(Plan) error           { return errUnsupported }
func (unsupportedDataplane) Check(string, Plan) error { return errUnsupported }
func (unsupportedDataplane) Sweep(string, map[ipam.Attachment]bool) ([]string, error) {
	return nil, errUnsupported
}
