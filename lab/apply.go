package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Manifest is one object read from a file, with where it came from.
type Manifest struct {
	Source string // file#N: the N-th non-empty document (1-based); [i] for List items
	Object *unstructured.Unstructured
}

// DecodeManifests reads every object of a multi-document YAML (or JSON)
// stream; empty documents are skipped, a List is expanded. source names
// the stream in errors.
func DecodeManifests(r io.Reader, source string) ([]Manifest, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(r), 4096)
	var out []Manifest
	for doc := 1; ; doc++ {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", source, doc, err)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		where := fmt.Sprintf("%s#%d", source, doc)
		if u.GetAPIVersion() == "" || u.GetKind() == "" {
			return nil, fmt.Errorf("%s: apiVersion and kind are required", where)
		}
		if u.IsList() {
			l, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			for i := range l.Items {
				out = append(out, Manifest{Source: fmt.Sprintf("%s[%d]", where, i), Object: &l.Items[i]})
			}
			continue
		}
		if u.GetName() == "" {
			return nil, fmt.Errorf("%s: %s has no metadata.name", where, u.GetKind())
		}
		out = append(out, Manifest{Source: where, Object: u})
	}
}

// ReadManifests reads files, directories (their *.yaml, *.yml and *.json,
// in name order, except kustomization.yaml which is not an API object) and
// "-" (stdin).
func ReadManifests(paths []string, stdin io.Reader) ([]Manifest, error) {
	var out []Manifest
	add := func(r io.Reader, src string) error {
		ms, err := DecodeManifests(r, src)
		out = append(out, ms...)
		return err
	}
	for _, p := range paths {
		if p == "-" {
			if err := add(stdin, "stdin"); err != nil {
				return nil, err
			}
			continue
		}
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("-f: %w", err)
		}
		files := []string{p}
		if fi.IsDir() {
			files = nil
			ents, err := os.ReadDir(p)
			if err != nil {
				return nil, fmt.Errorf("-f: %w", err)
			}
			for _, e := range ents {
				n := e.Name()
				ext := filepath.Ext(n)
				if e.IsDir() || !slices.Contains([]string{".yaml", ".yml", ".json"}, ext) ||
					strings.TrimSuffix(n, ext) == "kustomization" {
					continue
				}
				files = append(files, filepath.Join(p, n))
			}
		}
		for _, f := range files {
			b, err := os.Open(f)
			if err != nil {
				return nil, fmt.Errorf("-f: %w", err)
			}
			err = add(b, f)
			b.Close()
			if err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// ApplyResult is one object applied.
type ApplyResult struct {
	Source string `json:"source"`
	// Object is kind/name or kind/namespace/name.
	Object string `json:"object"`
}

// applyManifests applies ms in order by server-side apply with field
// manager FieldManager (forcing conflicts, as the lab owns what it
// applies). dryRun asks the server to validate and admit without storing.
// A kind the server does not know is looked up again once, so a
// CustomResourceDefinition and its objects can come in one file.
func applyManifests(ctx context.Context, rc *rest.Config, ms []Manifest, dryRun bool) ([]ApplyResult, error) {
	disc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("failed to create discovery client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("failed to create dynamic client: %w", err)
	}
	cached := memory.NewMemCacheClient(disc)
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(cached)
	opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
	if dryRun {
		opts.DryRun = []string{metav1.DryRunAll}
	}
	var out []ApplyResult
	for _, m := range ms {
		u := m.Object
		gvk := u.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if meta.IsNoMatchError(err) {
			mapper.Reset()
			mapping, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		}
		if err != nil {
			return out, fmt.Errorf("%s: %s %s: %w", m.Source, gvk, u.GetName(), err)
		}
		ri := dynamic.ResourceInterface(dyn.Resource(mapping.Resource))
		id := u.GetKind() + "/" + u.GetName()
		if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
			if u.GetNamespace() == "" {
				u.SetNamespace(metav1.NamespaceDefault)
			}
			ri = dyn.Resource(mapping.Resource).Namespace(u.GetNamespace())
			id = u.GetKind() + "/" + u.GetNamespace() + "/" + u.GetName()
		}
		if _, err := ri.Apply(ctx, u.GetName(), u, opts); err != nil {
			return out, fmt.Errorf("%s: failed to apply %s: %w", m.Source, id, err)
		}
		out = append(out, ApplyResult{Source: m.Source, Object: id})
	}
	return out, nil
}
