package serviceproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// healthChecks serves the healthCheckNodePort of every Service with
// externalTrafficPolicy: Local, as kube-proxy does: 200 while this node has
// a local endpoint, 503 while it has none, so that an external load
// balancer sends traffic only to nodes that can take it.
type healthChecks struct {
	log    *slog.Logger
	listen func(port uint16) (net.Listener, error)

	mu      sync.Mutex // guards servers
	servers map[uint16]*healthServer
}

type healthServer struct {
	srv     *http.Server
	service atomic.Value // string
	local   atomic.Int64
}

func newHealthChecks(log *slog.Logger) *healthChecks {
	return &healthChecks{log: log, servers: map[uint16]*healthServer{},
		listen: func(port uint16) (net.Listener, error) {
			return net.Listen("tcp", ":"+strconv.Itoa(int(port)))
		}}
}

// set makes the served ports exactly checks', with their endpoint counts.
// A port that cannot be opened is reported and retried on the next call.
func (h *healthChecks) set(checks []HealthCheck) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	want := map[uint16]HealthCheck{}
	for _, c := range checks {
		want[c.Port] = c
	}
	for port, s := range h.servers {
		if _, ok := want[port]; !ok {
			_ = s.srv.Close()
			delete(h.servers, port)
		}
	}
	var errs []error
	for port, c := range want {
		s, ok := h.servers[port]
		if !ok {
			l, err := h.listen(port)
			if err != nil {
				errs = append(errs, fmt.Errorf("healthCheckNodePort %d of %s: %w", port, c.Service, err))
				continue
			}
			s = &healthServer{}
			s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second}
			h.servers[port] = s
			go func() {
				if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
					h.log.Warn("health check server stopped", "port", port, "err", err)
				}
			}()
		}
		s.service.Store(c.Service)
		s.local.Store(int64(c.LocalEndpoints))
	}
	return errors.Join(errs...)
}

func (h *healthChecks) close() { _ = h.set(nil) }

// ServeHTTP answers kube-proxy's health check format.
func (s *healthServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	svc, _ := s.service.Load().(string)
	ns, name, _ := strings.Cut(svc, "/")
	n := s.local.Load()
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if n == 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(map[string]any{
		"service":        map[string]string{"namespace": ns, "name": name},
		"localEndpoints": n,
	})
}
