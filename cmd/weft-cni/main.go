// Command weft-cni is weft's CNI plugin, installed as /opt/cni/bin/weft-cni
// (network configuration "type": "weft-cni"). See package cni.
package main

import (
	"runtime"

	"github.com/weftnet/weft/cni"
)

func init() {
	// Namespace switches (setns) apply to one OS thread: keep main on the
	// thread group leader, as the reference plugins do. The binary's, not
	// package cni's: a library must not pin the thread of whoever imports it.
	runtime.LockOSThread()
}

func main() { cni.Main() }
