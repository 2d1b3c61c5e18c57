package agent

import (
	"github.com/weftnet/weft/serviceproxy"

	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Status is the node's view, served on the status socket and printed by
// `weft status`.
type Status struct {
	Node          string               `json:"node"`
	ClusterID     string               `json:"clusterID"`
	Backend       string               `json:"backend"`
	Interface     string               `json:"interface"`
	UnderlayIP    string               `json:"underlayIP"`
	PodCIDR       string               `json:"podCIDR"`
	MTU           int                  `json:"mtu"`
	Ready         bool                 `json:"ready"`
	Members       int                  `json:"members"`
	Kubernetes    string               `json:"kubernetes,omitempty"`
	DNS           *DNSStatus           `json:"dns,omitempty"`
	Policy        *PolicyStatus        `json:"policy,omitempty"`
	Services      *serviceproxy.Status `json:"services,omitempty"`
	Peering       *PeeringStatus       `json:"peering,omitempty"`
	Peers         []PeerStatus         `json:"peers"`
	Skipped       []SkippedPeer        `json:"skipped,omitempty"`
	LastReconcile time.Time            `json:"lastReconcile"`
	LastError     string               `json:"lastError,omitempty"`
}

// PeerStatus is one remote node as this node sees it.
type PeerStatus struct {
	Name          string    `json:"name"`
	Endpoint      string    `json:"endpoint"`
	PodCIDR       string    `json:"podCIDR"`
	LastHandshake time.Time `json:"lastHandshake,omitzero"`
	RxBytes       int64     `json:"rxBytes"`
	TxBytes       int64     `json:"txBytes"`
}

const (
	statusPath = "/v1/status"
	leavePath  = "/v1/leave"
)

// serveStatus listens on a unix socket (replacing a stale one) and answers
// GET /v1/status with get(); POST /v1/leave calls leave(). It returns when
// ctx is done.
func serveStatus(ctx context.Context, socket string, get func() Status, leave func()) error {
	if err := os.MkdirAll(filepath.Dir(socket), 0o755); err != nil {
		return fmt.Errorf("failed to create status socket directory: %w", err)
	}
	if err := os.Remove(socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("failed to remove stale status socket: %w", err)
	}
	l, err := net.Listen("unix", socket)
	if err != nil {
		return fmt.Errorf("failed to listen on status socket %s: %w", socket, err)
	}
	if err := os.Chmod(socket, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("failed to chmod status socket: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+statusPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(get())
	})
	mux.HandleFunc("POST "+leavePath, func(w http.ResponseWriter, _ *http.Request) {
		leave()
		w.WriteHeader(http.StatusAccepted)
	})
	return serveHTTP(ctx, l, mux, "status")
}

// serveHTTP serves h on l until ctx is done, then shuts down gracefully
// (bounded to a second).
func serveHTTP(ctx context.Context, l net.Listener, h http.Handler, name string) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("%s server: %w", name, err)
	}
	return nil
}

func unixClient(socket string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
}

// RequestLeave asks the agent behind socket to leave the cluster for good:
// it frees its lease at once, removes its tunnel, routes and state file, and
// exits.
func RequestLeave(ctx context.Context, socket string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://weft"+leavePath, nil)
	if err != nil {
		return err
	}
	resp, err := unixClient(socket).Do(req)
	if err != nil {
		return fmt.Errorf("failed to reach the agent at %s (is `weft agent` running?): %w", socket, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("agent at %s answered %s", socket, resp.Status)
	}
	return nil
}

// FetchStatus asks the agent behind socket for its status.
func FetchStatus(ctx context.Context, socket string) (Status, error) {
	var st Status
	client := unixClient(socket)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://weft"+statusPath, nil)
	if err != nil {
		return st, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return st, fmt.Errorf("failed to reach the agent at %s (is `weft agent` running?): %w", socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("agent at %s answered %s", socket, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("failed to decode agent status: %w", err)
	}
	return st, nil
}
