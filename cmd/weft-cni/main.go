// Command weft-cni is weft's CNI plugin, installed as /opt/cni/bin/weft-cni
// (network configuration "type": "weft-cni"). See package cni.
package main

import "github.com/weftnet/weft/cni"

func main() { cni.Main() }
