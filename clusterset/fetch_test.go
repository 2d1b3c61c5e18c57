package clusterset

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestDecodeRefusesBadDocuments(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"not JSON", `hello`, "failed to decode"},
		{"truncated", `{"cluster":"west-1","services":[`, "failed to decode"},
		{"unknown field", `{"cluster":"west-1","services":[],"extra":1}`, `unknown field "extra"`},
		{"wrong type", `{"cluster":"west-1","services":[{"namespace":"a","name":"b","type":"Headless","ports":[{"protocol":"TCP","port":"80"}]}]}`, "services.ports.port: string is not valid here"},
		{"trailing data", `{"cluster":"west-1","services":[]} {}`, "trailing data"},
		{"invalid", `{"cluster":"west-1","services":[{"namespace":"a","name":"b","type":"Headless","endpoints":[{"ip":"x"}]}]}`, `services[0].endpoints[0].ip: "x" is not an IP address`},
		{"too large", `{"cluster":"west-1","services":[],"` + strings.Repeat("x", MaxDocumentBytes) + `":1}`, "document larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Decode(strings.NewReader(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Decode: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// tunnelListener serves h on a loopback port, with every client seen as
// coming from a tunnel address (as a remote gateway through the peering
// device is).
func serveAs(t *testing.T, h http.Handler, remote string) netip.AddrPort {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.RemoteAddr = remote
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return netip.MustParseAddrPort(srv.Listener.Addr().String())
}

func TestHandlerAndFetch(t *testing.T) {
	doc := Document{Cluster: "west-1", Services: []Service{
		{Namespace: "shop", Name: "web", Type: ClusterSetIP, ClusterIPs: []string{"10.97.0.10"},
			Ports: []Port{{Name: "http", Protocol: "TCP", Port: 80}}, Endpoints: []Endpoint{{IP: "10.245.1.5"}}},
	}}
	var fail error
	h := &Handler{Exports: func() (Document, error) { return doc, fail }}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}

	addr := serveAs(t, h, "[fd57:6566:7470:1::1]:40000")
	got, err := Fetch(ctx, client, addr)
	if err != nil || !reflect.DeepEqual(got, doc) {
		t.Fatalf("Fetch = %+v, %v; want %+v", got, err, doc)
	}
	fail = errors.New("informers not synced")
	if _, err := Fetch(ctx, client, addr); err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "not synced") {
		t.Errorf("Fetch from an unready gateway: %v, want a 503 saying why", err)
	}
	fail = nil

	// Only peered gateways, through the tunnel, may read the exports.
	outside := serveAs(t, h, "10.245.1.5:40000")
	if _, err := Fetch(ctx, client, outside); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("Fetch from outside the tunnel prefix: %v, want 403", err)
	}
	// Only GET, only /v1/exports.
	for _, tc := range []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, Path, http.StatusMethodNotAllowed},
		{http.MethodDelete, Path, http.StatusMethodNotAllowed},
		{http.MethodGet, "/v1/other", http.StatusNotFound},
	} {
		req, _ := http.NewRequestWithContext(ctx, tc.method, "http://"+addr.String()+tc.path, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.method, tc.path, resp.StatusCode, tc.want)
		}
	}
}

func TestFetchRefusesABadRemote(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second}
	bad := serveAs(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"cluster":"west-1","services":[{"namespace":"shop","name":"web","type":"ClusterSetIP","clusterIPs":["10.97.0.10"]},{"namespace":"shop","name":"web","type":"Headless"}]}`))
	}), "[fd57:6566:7470::1]:1")
	doc, err := Fetch(ctx, client, bad)
	if err == nil || !strings.Contains(err.Error(), "services[1]: shop/web is listed twice") {
		t.Errorf("Fetch of a duplicate: %v", err)
	}
	if doc.Cluster != "" || doc.Services != nil {
		t.Errorf("Fetch returned part of a bad document: %+v", doc)
	}
	// A redirect elsewhere is not followed.
	var followed atomic.Bool
	elsewhere := serveAs(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { followed.Store(true) }), "[fd57:6566:7470::1]:1")
	redirect := serveAs(t, http.RedirectHandler("http://"+elsewhere.String()+Path, http.StatusFound), "[fd57:6566:7470::1]:1")
	if _, err := Fetch(ctx, client, redirect); err == nil || !strings.Contains(err.Error(), "302") || followed.Load() {
		t.Errorf("Fetch of a redirect: %v (followed: %v), want a 302 error, not followed", err, followed.Load())
	}
	// Nothing listening: an error, not a hang.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := netip.MustParseAddrPort(l.Addr().String())
	l.Close()
	if _, err := Fetch(ctx, client, closed); err == nil {
		t.Errorf("Fetch from a closed port succeeded")
	}
}
