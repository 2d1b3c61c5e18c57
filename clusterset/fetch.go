package clusterset

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strings"
)

// Fetch gets the Document served at addr (a remote gateway's tunnel
// address and export port). The answer is bounded (MaxDocumentBytes),
// decoded strictly (an unknown field, a wrong type or trailing data is an
// error) and validated whole: it returns a Document only when all of it is
// usable, so a bad one is never half applied. A redirect is an error, not
// followed: a peer cannot send the gateway to fetch from elsewhere.
func Fetch(ctx context.Context, client *http.Client, addr netip.AddrPort) (Document, error) {
	noRedirect := *client
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	client = &noRedirect
	url := "http://" + addr.String() + Path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Document{}, fmt.Errorf("failed to make the request for %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return Document{}, fmt.Errorf("failed to fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return Document{}, fmt.Errorf("failed to fetch %s: %s: %s", url, resp.Status, strings.TrimSpace(string(msg)))
	}
	doc, err := Decode(resp.Body)
	if err != nil {
		return Document{}, fmt.Errorf("bad exports from %s: %w", url, err)
	}
	return doc, nil
}

// Decode reads one Document from r as Fetch does: bounded, strict and
// validated.
func Decode(r io.Reader) (Document, error) {
	lr := &io.LimitedReader{R: r, N: MaxDocumentBytes + 1}
	dec := json.NewDecoder(lr)
	dec.DisallowUnknownFields()
	var doc Document
	err := dec.Decode(&doc)
	if lr.N <= 0 {
		return Document{}, fmt.Errorf("document larger than %d bytes", MaxDocumentBytes)
	}
	if err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return Document{}, fmt.Errorf("%s: %s is not valid here", te.Field, te.Value)
		}
		return Document{}, fmt.Errorf("failed to decode: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Document{}, fmt.Errorf("trailing data after the document")
	}
	if err := doc.Validate(); err != nil {
		return Document{}, err
	}
	return doc, nil
}
