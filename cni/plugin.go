// Package cni is weft-cni, the CNI plugin that wires pods into a weft node.
//
// The data path is routed, with no bridge (as ptp or Calico): each pod gets
// a veth pair, the pod end holds podIP/32 with routes "gateway/32 dev eth0
// scope link" and "default via gateway", the host end holds gateway/32, and
// the host routes podIP/32 to the host end. The pod's address comes from the
// node's block, read from the state file the agent writes (package
// nodestate), by the file-backed allocator in package ipam.
//
// Every command parses and validates its configuration first, so bad input
// fails with a CNI error naming the field before anything is touched.
package cni

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/weftnet/weft/cni/ipam"
	"github.com/weftnet/weft/nodestate"
)

// SupportedVersions are the CNI spec versions weft-cni speaks. 0.1.0 and
// 0.2.0 are left out: their results cannot describe interfaces.
var SupportedVersions = version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

// About is printed when the binary runs without CNI_COMMAND.
const About = "weft-cni: the weft pod network CNI plugin"

// CodeCheckFailed is the plugin-specific error code CHECK returns when the
// attachment no longer looks the way ADD left it.
const CodeCheckFailed uint = 100

// CodeSecondInterface is the plugin-specific error code ADD returns for a
// second weft interface in one pod (one network namespace): a pod has one
// weft interface, which holds its default route.
const CodeSecondInterface uint = 101

// Dataplane does the kernel work. The Linux implementation uses netlink;
// tests substitute a fake.
type Dataplane interface {
	// CheckNetNS validates CNI_NETNS before anything is allocated.
	CheckNetNS(netnsPath string) error
	// Add creates and configures the veth pair. On error it leaves no
	// link behind.
	Add(netnsPath string, p Plan) (host, cont *current.Interface, err error)
	// Del removes the host veth (and with it the pod end and the host
	// route). A missing veth is not an error.
	Del(p Plan) error
	// Check verifies both ends against p.
	Check(netnsPath string, p Plan) error
	// Sweep deletes the host veths of network whose attachment is not in
	// keep, and returns their names.
	Sweep(network string, keep map[ipam.Attachment]bool) ([]string, error)
}

// Plugin is weft-cni's command set.
type Plugin struct {
	DP Dataplane
	// ReadState reads the node state; nodestate.Read unless a test says
	// otherwise.
	ReadState func(path string) (nodestate.State, error)
}

// Main runs the plugin on the real kernel: the whole of cmd/weft-cni, which
// locks main to its OS thread first (namespace switches are per thread).
// Stdin is read here first, bounded and screened (stdin.go).
func Main() {
	if err := screenStdin(); err != nil {
		var e *types.Error
		if errors.As(err, &e) {
			_ = e.Print()
		}
		os.Exit(1)
	}
	p := &Plugin{DP: newLinuxDataplane(), ReadState: nodestate.Read}
	skel.PluginMainFuncs(p.Funcs(), SupportedVersions, About)
}

// Funcs returns the skel callbacks.
func (p *Plugin) Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{
		Add:    p.wrap("ADD", p.add),
		Del:    p.wrap("DEL", p.del),
		Check:  p.wrap("CHECK", p.check),
		Status: p.wrap("STATUS", p.status),
		GC:     p.wrap("GC", p.gc),
	}
}

type command func(log *slog.Logger, args *skel.CmdArgs, conf *NetConf) error

// wrap parses the configuration, opens the log, runs cmd, logs its outcome
// and turns a panic into a CNI error.
func (p *Plugin) wrap(name string, cmd command) func(*skel.CmdArgs) error {
	return func(args *skel.CmdArgs) (err error) {
		conf, err := ParseConfig(args.StdinData)
		if err != nil {
			return err
		}
		log, closeLog := openLog(conf.LogFile)
		defer closeLog()
		log = log.With("command", name, "network", conf.Name,
			"containerID", args.ContainerID, "ifname", args.IfName, "netns", args.Netns)
		defer func() {
			if r := recover(); r != nil {
				err = types.NewError(types.ErrInternal, fmt.Sprintf("weft-cni %s panicked: %v", name, r), "")
			}
			if err != nil {
				log.Error("failed", "err", err)
			} else {
				log.Info("done")
			}
		}()
		return cmd(log, args, conf)
	}
}

// readState reads the node state, mapping "not there yet" and "broken" to
// code, and refusing blocks weft-cni cannot serve.
func (p *Plugin) readState(path string, code uint) (nodestate.State, error) {
	st, err := p.ReadState(path)
	if err != nil {
		if errors.Is(err, nodestate.ErrNotReady) {
			return st, types.NewError(code, "weft agent has not published this node's pod subnet yet", err.Error())
		}
		return st, types.NewError(code, "weft node state is unusable", err.Error())
	}
	if !st.PodCIDR.Addr().Is4() {
		return st, types.NewError(code, "weft-cni supports IPv4 pod subnets only", fmt.Sprintf("node state podCIDR is %v", st.PodCIDR))
	}
	if err := ipam.CheckBlock(st.PodCIDR, st.Gateway); err != nil {
		return st, types.NewError(code, "weft node state has an unusable pod subnet", err.Error())
	}
	return st, nil
}

func openStore(dir string) (*ipam.Store, error) {
	s, err := ipam.Open(dir)
	if err != nil {
		return nil, types.NewError(types.ErrIOFailure, "failed to open the IPAM store", err.Error())
	}
	return s, nil
}

// ipamError maps allocator failures to CNI codes: exhaustion and lock
// contention are transient (11), the rest is I/O (5).
func ipamError(msg string, err error) error {
	if errors.Is(err, ipam.ErrExhausted) || errors.Is(err, ipam.ErrLockTimeout) {
		return types.NewError(types.ErrTryAgainLater, msg, err.Error())
	}
	return types.NewError(types.ErrIOFailure, msg, err.Error())
}

// add allocates an address and wires the pod. Repeat ADD of a live
// attachment: the allocator returns the address it already holds, and the
// data path refuses because the pod interface exists (the spec requires
// an error); the reservation is left alone. Any failure after a fresh
// allocation releases it (named err + deferred rollback).
func (p *Plugin) add(log *slog.Logger, args *skel.CmdArgs, conf *NetConf) (err error) {
	st, err := p.readState(conf.StateFile, types.ErrTryAgainLater)
	if err != nil {
		return err
	}
	var prev *current.Result
	if conf.RawPrevResult != nil {
		if err = version.ParsePrevResult(&conf.PluginConf); err != nil {
			return types.NewError(types.ErrDecodingFailure, "failed to parse prevResult", err.Error())
		}
		if prev, err = current.NewResultFromResult(conf.PrevResult); err != nil {
			return types.NewError(types.ErrDecodingFailure, "failed to convert prevResult", err.Error())
		}
	}
	if err = p.DP.CheckNetNS(args.Netns); err != nil {
		return err
	}
	store, err := openStore(conf.DataDir)
	if err != nil {
		return err
	}
	att := ipam.Attachment{ContainerID: args.ContainerID, IfName: args.IfName}
	if err = refuseSecondInterface(store, att, conf.Name); err != nil {
		return err
	}
	podIP, fresh, err := store.Allocate(st.PodCIDR, st.Gateway, att, conf.Name)
	if err != nil {
		return ipamError("failed to allocate a pod address", err)
	}
	log = log.With("podIP", podIP)
	defer func() {
		if err == nil || !fresh {
			return
		}
		if _, rerr := store.Release(att, podIP); rerr != nil {
			log.Error("failed to release the address of a failed ADD", "err", rerr)
		}
	}()

	plan := NewPlan(conf.Name, att, podIP, st.Gateway, st.MTU)
	host, cont, err := p.DP.Add(args.Netns, plan)
	if err != nil {
		return err
	}
	defer func() {
		if err == nil {
			return
		}
		if derr := p.DP.Del(plan); derr != nil {
			log.Error("failed to remove the veth of a failed ADD", "err", derr)
		}
	}()

	result := plan.Result(conf.CNIVersion, host, cont, conf.DNS, prev)
	if err = types.PrintResult(result, conf.CNIVersion); err != nil {
		return types.NewError(types.ErrIOFailure, "failed to print the result", err.Error())
	}
	return nil
}

// refuseSecondInterface fails, before anything is allocated, when the
// container already has a weft interface of this network under another
// name. (The data path checks the pod's namespace itself as well.)
func refuseSecondInterface(store *ipam.Store, att ipam.Attachment, network string) error {
	all, err := store.List()
	if err != nil {
		return ipamError("failed to read the IPAM store", err)
	}
	for _, al := range all {
		if al.ContainerID == att.ContainerID && al.IfName != att.IfName && al.Network == network {
			return secondInterface(al.IfName, att.IfName)
		}
	}
	return nil
}

func secondInterface(existing, asked string) error {
	return types.NewError(CodeSecondInterface,
		fmt.Sprintf("weft-cni allows one interface per pod network namespace: %q exists, so %q cannot be added", existing, asked),
		"DEL the existing attachment first, or give the second interface to another plugin")
}

// del removes the host veth and releases the address. It needs neither
// the pod's netns nor the node state, and succeeds when there is nothing
// left to remove.
func (p *Plugin) del(log *slog.Logger, args *skel.CmdArgs, conf *NetConf) error {
	att := ipam.Attachment{ContainerID: args.ContainerID, IfName: args.IfName}
	plan := NewPlan(conf.Name, att, netip.Addr{}, netip.Addr{}, 0)
	if err := p.DP.Del(plan); err != nil {
		return types.NewError(types.ErrIOFailure, "failed to delete the host veth "+plan.HostVeth, err.Error())
	}
	store, err := openStore(conf.DataDir)
	if err != nil {
		return err
	}
	released, err := store.Release(att, netip.Addr{})
	if err != nil {
		return ipamError("failed to release the pod address", err)
	}
	log.Info("released", "addresses", released)
	return nil
}

// check verifies the reservation, the pod interface (address, MTU,
// routes) and the host veth and route.
func (p *Plugin) check(_ *slog.Logger, args *skel.CmdArgs, conf *NetConf) error {
	st, err := p.readState(conf.StateFile, types.ErrTryAgainLater)
	if err != nil {
		return err
	}
	store, err := openStore(conf.DataDir)
	if err != nil {
		return err
	}
	att := ipam.Attachment{ContainerID: args.ContainerID, IfName: args.IfName}
	al, found, err := store.Lookup(att)
	if err != nil {
		return ipamError("failed to read the IPAM store", err)
	}
	if !found {
		return checkFailed("no address is reserved for %v", att)
	}
	if conf.RawPrevResult != nil {
		if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
			return types.NewError(types.ErrDecodingFailure, "failed to parse prevResult", err.Error())
		}
		prev, err := current.NewResultFromResult(conf.PrevResult)
		if err != nil {
			return types.NewError(types.ErrDecodingFailure, "failed to convert prevResult", err.Error())
		}
		want, err := podIPFromResult(prev, args.IfName, args.Netns)
		if err != nil {
			return checkFailed("%v", err)
		}
		if want != al.IP {
			return checkFailed("prevResult gives %s address %v, but %v is reserved for it", args.IfName, want, al.IP)
		}
	}
	if !st.PodCIDR.Contains(al.IP) {
		return checkFailed("pod address %v is outside this node's pod subnet %v (the node's lease changed)", al.IP, st.PodCIDR)
	}
	return p.DP.Check(args.Netns, NewPlan(conf.Name, att, al.IP, st.Gateway, st.MTU))
}

// status reports whether an ADD could succeed now: code 50 while the
// agent has not published a usable subnet, or when it is exhausted.
func (p *Plugin) status(_ *slog.Logger, _ *skel.CmdArgs, conf *NetConf) error {
	st, err := p.readState(conf.StateFile, types.ErrPluginNotAvailable)
	if err != nil {
		return err
	}
	store, err := ipam.Open(conf.DataDir)
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "the IPAM store is unusable", err.Error())
	}
	free, err := store.Free(st.PodCIDR, st.Gateway)
	if err != nil {
		return types.NewError(types.ErrPluginNotAvailable, "the IPAM store is unusable", err.Error())
	}
	if free == 0 {
		return types.NewError(types.ErrPluginNotAvailable, "no free pod addresses", fmt.Sprintf("every address of %v is allocated", st.PodCIDR))
	}
	return nil
}

// gc releases the addresses of attachments of this network that are not
// in cni.dev/valid-attachments, and deletes their host veths. It carries
// on past errors and reports them all at the end.
func (p *Plugin) gc(log *slog.Logger, _ *skel.CmdArgs, conf *NetConf) error {
	keep := conf.KeepSet()
	var errs []error
	store, err := openStore(conf.DataDir)
	if err != nil {
		return err
	}
	gone, err := store.GC(conf.Name, keep)
	if err != nil {
		errs = append(errs, err)
	}
	for _, al := range gone {
		log.Info("released stale allocation", "podIP", al.IP, "attachment", al.Attachment.String())
		if err := p.DP.Del(NewPlan(conf.Name, al.Attachment, al.IP, netip.Addr{}, 0)); err != nil {
			errs = append(errs, err)
		}
	}
	swept, err := p.DP.Sweep(conf.Name, keep)
	if err != nil {
		errs = append(errs, err)
	}
	if len(swept) > 0 {
		log.Info("deleted stale host veths", "links", swept)
	}
	if err := errors.Join(errs...); err != nil {
		return types.NewError(types.ErrIOFailure, "garbage collection was incomplete", err.Error())
	}
	return nil
}

func checkFailed(format string, a ...any) error {
	return types.NewError(CodeCheckFailed, "weft-cni CHECK failed", fmt.Sprintf(format, a...))
}
