package clusterset

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/netip"

	"github.com/weftnet/weft/peering"
)

// Path is where a gateway serves its cluster's Document.
const Path = "/v1/exports"

// Handler serves GET /v1/exports to the other clusters' gateways. It
// refuses every other method, and any client whose address lies outside
// peering.TunnelPrefix: only a peered gateway, through its tunnel, may
// read what this cluster exports.
type Handler struct {
	// Exports returns the current Document; an error answers 503 (the
	// informers have not listed yet, for instance).
	Exports func() (Document, error)
	Log     *slog.Logger
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	src, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !peering.TunnelPrefix.Contains(src.Addr().Unmap()) {
		http.Error(w, "exports are served to peered gateways only", http.StatusForbidden)
		return
	}
	if r.URL.Path != Path {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "only GET", http.StatusMethodNotAllowed)
		return
	}
	doc, err := h.Exports()
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(doc); err != nil && h.Log != nil {
		h.Log.Debug("failed to send the exports", "client", r.RemoteAddr, "err", err)
	}
}
