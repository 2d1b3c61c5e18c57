// Command svcbench is the measuring half of scripts/bench-services.sh: it
// writes Services and their EndpointSlices to a lab's API server, times TCP
// connects from pod namespaces, and times an EndpointSlice change until
// traffic from a pod follows it. The script sets up the lab, the proxies
// and the backends; svcbench only measures.
//
// Subcommands:
//
//	populate  Services PREFIX-FROM..PREFIX-(TO-1), each with one EndpointSlice
//	          of the given backends (no selector: the slices are written here,
//	          so both proxies see exactly the same objects)
//	list      "name clusterIP" of every Service in the namespace
//	wait      until every target answers from each case's netns
//	latency   blocking connect() times from each case's netns to its targets,
//	          cases interleaved round by round
//	change    flips a Service's only endpoint between two addresses and, for
//	          each case, the time until a connection from its netns reaches
//	          the new one
//
// Sockets are opened on an OS thread switched into the pod's namespace; the
// thread is never switched back and dies with its goroutine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/weftnet/weft/lab/probe"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: svcbench populate|list|latency|change [flags]")
		os.Exit(2)
	}
	cmds := map[string]func([]string) error{
		"populate": populate,
		"list":     list,
		"wait":     wait,
		"latency":  latency,
		"change":   change,
	}
	f, ok := cmds[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "svcbench: unknown subcommand %q\n", os.Args[1])
		os.Exit(2)
	}
	if err := f(os.Args[2:]); err != nil {
		fmt.Fprintf(os.Stderr, "svcbench %s: %v\n", os.Args[1], err)
		os.Exit(1)
	}
}

// managedBy marks the EndpointSlices svcbench writes, so that no
// controller of the cluster takes them for its own.
const managedBy = "svcbench.weft.dev"

func client(kubeconfig string) (kubernetes.Interface, error) {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("failed to load kubeconfig %s: %w", kubeconfig, err)
	}
	rc.QPS, rc.Burst = 2000, 2000
	rc.Timeout = 30 * time.Second
	return kubernetes.NewForConfig(rc)
}

func populate(args []string) error {
	fs := flag.NewFlagSet("populate", flag.ExitOnError)
	kc := fs.String("kubeconfig", "", "admin kubeconfig")
	ns := fs.String("namespace", "bench", "namespace (created if missing)")
	prefix := fs.String("prefix", "svc", "Service name prefix")
	from := fs.Int("from", 0, "first index")
	to := fs.Int("to", 1000, "last index + 1")
	backends := fs.String("backends", "", "endpoint addresses, comma-separated")
	node := fs.String("node", "", "the endpoints' nodeName")
	port := fs.Int("port", 80, "Service port")
	target := fs.Int("target-port", 8080, "endpoint port")
	workers := fs.Int("workers", 8, "concurrent writers")
	_ = fs.Parse(args)
	var eps []string
	for _, s := range strings.Split(*backends, ",") {
		if _, err := netip.ParseAddr(s); err != nil {
			return fmt.Errorf("-backends: %w", err)
		}
		eps = append(eps, s)
	}
	cs, err := client(*kc)
	if err != nil {
		return err
	}
	ctx := context.Background()
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: *ns}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create namespace %s: %w", *ns, err)
	}
	idx := make(chan int)
	var failed atomic.Value
	var wg sync.WaitGroup
	for range *workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range idx {
				name := fmt.Sprintf("%s-%d", *prefix, i)
				if err := writeService(ctx, cs, *ns, name, *node, eps, *port, *target); err != nil {
					failed.Store(err)
				}
			}
		}()
	}
	start := time.Now()
	for i := *from; i < *to; i++ {
		if failed.Load() != nil {
			break
		}
		idx <- i
	}
	close(idx)
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "svcbench: %d Services with their EndpointSlices written in %.1fs\n", *to-*from, time.Since(start).Seconds())
	return nil
}

// writeService creates Service name and its EndpointSlice; objects that
// exist already are left as they are.
func writeService(ctx context.Context, cs kubernetes.Interface, ns, name, node string, eps []string, port, target int) error {
	tcp := corev1.ProtocolTCP
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Type:  corev1.ServiceTypeClusterIP,
			Ports: []corev1.ServicePort{{Name: "http", Port: int32(port), TargetPort: intstr.FromInt32(int32(target)), Protocol: tcp}},
		},
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create Service %s/%s: %w", ns, name, err)
	}
	if _, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice(ns, name, node, eps, target), metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("failed to create EndpointSlice of %s/%s: %w", ns, name, err)
	}
	return nil
}

func slice(ns, svc, node string, eps []string, port int) *discoveryv1.EndpointSlice {
	tcp, name, ready, p := corev1.ProtocolTCP, "http", true, int32(port)
	es := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name: svc + "-1", Namespace: ns,
			Labels: map[string]string{discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: managedBy},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Port: &p, Protocol: &tcp}},
	}
	for _, a := range eps {
		n := node
		es.Endpoints = append(es.Endpoints, discoveryv1.Endpoint{
			Addresses: []string{a}, NodeName: &n,
			Conditions: discoveryv1.EndpointConditions{Ready: &ready},
		})
	}
	return es
}

func list(args []string) error {
	fs := flag.NewFlagSet("list", flag.ExitOnError)
	kc := fs.String("kubeconfig", "", "admin kubeconfig")
	ns := fs.String("namespace", "bench", "namespace")
	_ = fs.Parse(args)
	cs, err := client(*kc)
	if err != nil {
		return err
	}
	l, err := cs.CoreV1().Services(*ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("failed to list Services: %w", err)
	}
	for _, s := range l.Items {
		fmt.Printf("%s %s\n", s.Name, s.Spec.ClusterIP)
	}
	return nil
}

// caseFlag is label=NETNS[=FILE], repeated.
type caseFlag []struct{ label, netns, file string }

func (c *caseFlag) String() string { return fmt.Sprint(*c) }
func (c *caseFlag) Set(s string) error {
	p := strings.SplitN(s, "=", 3)
	if len(p) < 2 {
		return fmt.Errorf("%q is not LABEL=NETNS[=FILE]", s)
	}
	v := struct{ label, netns, file string }{label: p[0], netns: p[1]}
	if len(p) == 3 {
		v.file = p[2]
	}
	*c = append(*c, v)
	return nil
}

// inNetns runs f on a goroutine whose thread is in the namespace at path;
// the thread is not restored, so it ends with the goroutine.
func inNetns(path string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		h, err := netns.GetFromPath(path)
		if err != nil {
			errc <- fmt.Errorf("failed to open netns %s: %w", path, err)
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			errc <- fmt.Errorf("failed to enter netns %s: %w", path, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// connect opens a blocking TCP socket to a and returns it with the time
// connect() took: SYN out, SYN-ACK back, through whatever translates
// addresses on the way.
func connect(a netip.AddrPort, timeout time.Duration) (int, time.Duration, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, 0, err
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &tv)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	sa := &unix.SockaddrInet4{Addr: a.Addr().As4(), Port: int(a.Port())}
	t := time.Now()
	err = unix.Connect(fd, sa)
	d := time.Since(t)
	if err != nil {
		unix.Close(fd)
		return -1, d, err
	}
	return fd, d, nil
}

// abort closes fd with a reset, so that no TIME_WAIT entry is left.
func abort(fd int) {
	_ = unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	unix.Close(fd)
}

func readTargets(file string) ([]netip.AddrPort, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var out []netip.AddrPort
	for _, l := range strings.Fields(string(b)) {
		a, err := netip.ParseAddrPort(l)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no targets", file)
	}
	return out, nil
}

func pct(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*q))]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func wait(args []string) error {
	fs := flag.NewFlagSet("wait", flag.ExitOnError)
	var cases caseFlag
	fs.Var(&cases, "case", "LABEL=NETNS=FILE (targets, one ADDR:PORT a line); repeated")
	timeout := fs.Duration("timeout", 10*time.Minute, "longest wait")
	_ = fs.Parse(args)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(cases))
	took := make([]time.Duration, len(cases))
	for i, c := range cases {
		ts, err := readTargets(c.file)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = inNetns(c.netns, func() error {
				for _, t := range ts {
					for {
						if _, err := ask(t); err == nil {
							break
						} else if time.Since(start) > *timeout {
							return fmt.Errorf("%s: %s not answered after %s: %w", c.label, t, *timeout, err)
						}
						time.Sleep(50 * time.Millisecond)
					}
				}
				took[i] = time.Since(start)
				return nil
			})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for i, c := range cases {
		fmt.Printf("%s %.1f\n", c.label, took[i].Seconds())
	}
	return nil
}

// connector does one connect at a time from its netns, on request.
type connector struct {
	req  chan netip.AddrPort
	resp chan result
}

type result struct {
	d   time.Duration
	err error
}

func startConnector(path string) (*connector, error) {
	c := &connector{req: make(chan netip.AddrPort), resp: make(chan result)}
	ready := make(chan error, 1)
	go func() {
		err := inNetns(path, func() error {
			ready <- nil
			for a := range c.req {
				fd, d, err := connect(a, time.Second)
				if err == nil {
					abort(fd)
				}
				c.resp <- result{d, err}
			}
			return nil
		})
		if err != nil { // the netns was not entered
			ready <- err
		}
	}()
	return c, <-ready
}

func latency(args []string) error {
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	var cases caseFlag
	fs.Var(&cases, "case", "LABEL=NETNS=FILE (targets, one ADDR:PORT a line, used in turn); repeated")
	n := fs.Int("n", 2000, "connects per case")
	rounds := fs.Int("rounds", 10, "the connects are reported in this many rounds too, for their spread")
	gap := fs.Duration("gap", time.Millisecond, "pause between connects")
	_ = fs.Parse(args)
	if len(cases) == 0 {
		return errors.New("no -case")
	}
	targets := make([][]netip.AddrPort, len(cases))
	conns := make([]*connector, len(cases))
	for i, c := range cases {
		var err error
		if targets[i], err = readTargets(c.file); err != nil {
			return err
		}
		if conns[i], err = startConnector(c.netns); err != nil {
			return err
		}
		defer close(conns[i].req)
	}
	do := func(i int, a netip.AddrPort) (time.Duration, error) {
		conns[i].req <- a
		r := <-conns[i].resp
		if r.err != nil {
			return 0, fmt.Errorf("%s: connect %s: %w", cases[i].label, a, r.err)
		}
		return r.d, nil
	}
	// A few connects first, so every case starts warm.
	for i := range cases {
		for range 3 {
			if _, err := do(i, targets[i][0]); err != nil {
				return err
			}
		}
	}
	// The cases take turns connect by connect, the first one changing
	// every time, so that they share whatever else the machine is doing.
	per := max(1, *n / *rounds)
	all := make([][]time.Duration, len(cases))
	p50s, p99s := make([][]time.Duration, len(cases)), make([][]time.Duration, len(cases))
	for j := range *n {
		for k := range cases {
			i := (j + k) % len(cases)
			d, err := do(i, targets[i][j%len(targets[i])])
			if err != nil {
				return err
			}
			all[i] = append(all[i], d)
			time.Sleep(*gap)
		}
		if (j+1)%per == 0 {
			for i := range cases {
				r := all[i][len(all[i])-per:]
				p50s[i] = append(p50s[i], pct(r, 0.50))
				p99s[i] = append(p99s[i], pct(r, 0.99))
			}
		}
	}
	// label n p50 p99 p50-min p50-max p99-min p99-max (microseconds; the
	// spreads are over rounds)
	for i, c := range cases {
		fmt.Printf("%s %d %.0f %.0f %.0f %.0f %.0f %.0f\n", c.label, len(all[i]),
			us(pct(all[i], 0.50)), us(pct(all[i], 0.99)),
			us(slices.Min(p50s[i])), us(slices.Max(p50s[i])), us(slices.Min(p99s[i])), us(slices.Max(p99s[i])))
	}
	return nil
}

func change(args []string) error {
	fs := flag.NewFlagSet("change", flag.ExitOnError)
	kc := fs.String("kubeconfig", "", "admin kubeconfig")
	ns := fs.String("namespace", "bench", "namespace")
	svc := fs.String("service", "", "the Service whose EndpointSlice (SERVICE-1) is changed")
	addr := fs.String("addr", "", "the Service's ClusterIP:PORT")
	a := fs.String("a", "", "one endpoint address")
	b := fs.String("b", "", "the other")
	node := fs.String("node", "", "the endpoints' nodeName")
	port := fs.Int("target-port", 8080, "endpoint port")
	rounds := fs.Int("rounds", 10, "changes (A to B, B to A, ...)")
	timeout := fs.Duration("timeout", 120*time.Second, "longest wait for one change")
	var cases caseFlag
	fs.Var(&cases, "case", "LABEL=NETNS: where a prober connects from; repeated")
	_ = fs.Parse(args)
	target, err := netip.ParseAddrPort(*addr)
	if err != nil {
		return fmt.Errorf("-addr: %w", err)
	}
	cs, err := client(*kc)
	if err != nil {
		return err
	}
	ctx := context.Background()
	esc := cs.DiscoveryV1().EndpointSlices(*ns)
	cur, to := *a, *b
	res := make([][]time.Duration, len(cases))
	for r := range *rounds {
		// Every prober must reach the current endpoint first.
		want := netip.AddrPortFrom(netip.MustParseAddr(cur), uint16(*port))
		if err := awaitAll(cases, target, want, time.Now(), *timeout, nil); err != nil {
			return fmt.Errorf("round %d, before the change: %w", r, err)
		}
		es, err := esc.Get(ctx, *svc+"-1", metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("failed to get EndpointSlice %s-1: %w", *svc, err)
		}
		es.Endpoints = slice(*ns, *svc, *node, []string{to}, *port).Endpoints
		want = netip.AddrPortFrom(netip.MustParseAddr(to), uint16(*port))
		got := make([]time.Duration, len(cases))
		start := time.Now()
		errc := make(chan error, 1)
		go func() {
			_, err := esc.Update(ctx, es, metav1.UpdateOptions{})
			errc <- err
		}()
		if err := awaitAll(cases, target, want, start, *timeout, got); err != nil {
			return fmt.Errorf("round %d: %w", r, err)
		}
		if err := <-errc; err != nil {
			return fmt.Errorf("failed to update EndpointSlice %s-1: %w", *svc, err)
		}
		for i := range cases {
			res[i] = append(res[i], got[i])
		}
		fmt.Fprintf(os.Stderr, "svcbench: change %d/%d:", r+1, *rounds)
		for i, c := range cases {
			fmt.Fprintf(os.Stderr, " %s %.0fms", c.label, ms(got[i]))
		}
		fmt.Fprintln(os.Stderr)
		cur, to = to, cur
		time.Sleep(time.Second)
	}
	// label n p50 max min (milliseconds) then every sample
	for i, c := range cases {
		s := slices.Clone(res[i])
		sort.Slice(s, func(x, y int) bool { return s[x] < s[y] })
		fmt.Printf("%s %d %.0f %.0f %.0f", c.label, len(s), ms(pct(s, 0.5)), ms(s[len(s)-1]), ms(s[0]))
		for _, d := range res[i] {
			fmt.Printf(" %.0f", ms(d))
		}
		fmt.Println()
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// awaitAll probes target from every case's netns until the answer comes
// from want, and stores in got (when not nil) how long after start the
// connect that reached it began.
func awaitAll(cases caseFlag, target, want netip.AddrPort, start time.Time, timeout time.Duration, got []time.Duration) error {
	var wg sync.WaitGroup
	errs := make([]error, len(cases))
	for i, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = inNetns(c.netns, func() error {
				deadline := start.Add(timeout)
				for time.Now().Before(deadline) {
					t := time.Now()
					if server, err := ask(target); err == nil && server == want {
						if got != nil {
							got[i] = t.Sub(start)
						}
						return nil
					}
					time.Sleep(time.Millisecond)
				}
				return fmt.Errorf("%s: %s still not answered by %s after %s", c.label, target, want, timeout)
			})
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ask connects to target and returns the address the probe server says it
// answered on.
func ask(target netip.AddrPort) (netip.AddrPort, error) {
	fd, _, err := connect(target, 200*time.Millisecond)
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer abort(fd)
	buf := make([]byte, 256)
	n, err := unix.Read(fd, buf)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ans, err := probe.ParseAnswer(string(buf[:n]))
	if err != nil {
		return netip.AddrPort{}, err
	}
	return ans.Server, nil
}
