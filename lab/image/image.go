// Package image writes OCI image archives (an oci-layout directory in a
// tar) that `ctr images import` loads, so the lab's nodes run containers
// without a registry. An image is one uncompressed layer built from files
// of the host: binaries, symbolic links and empty directories. Writing is
// deterministic (fixed times, sorted entries), so the same files give the
// same digests and a layer shared by several images is stored once.
package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// Entry is one file of a layer.
type Entry struct {
	// Path inside the image, relative ("bin/sh") or absolute ("/bin/sh").
	Path string
	// Src is a host file copied in (regular files only).
	Src string
	// Link makes a symbolic link to Link instead.
	Link string
	// Dir makes an empty directory instead (mode 0755, 1777 for tmp).
	Dir bool
	// Data makes a regular file (mode 0644) holding Data instead.
	Data []byte
}

// Image is one image of an archive.
type Image struct {
	// Ref is the name containerd gives it: registry.k8s.io/pause:3.10.
	Ref string
	// Entrypoint and Cmd are the image config's.
	Entrypoint, Cmd []string
	// Env defaults to a PATH of /bin, /usr/bin, /sbin and /usr/sbin.
	Env []string
	// Layer is the image's one layer.
	Layer []Entry
}

// epoch is every entry's modification time, for reproducible digests.
var epoch = time.Unix(0, 0).UTC()

const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
)

// Write writes an archive of images to w. Images with the same layer
// share its blob.
func Write(w io.Writer, images ...Image) error {
	if len(images) == 0 {
		return errors.New("image: no images")
	}
	type blob struct {
		digest string
		data   []byte
	}
	var blobs []blob
	seen := map[string]bool{}
	add := func(b []byte) (digest string) {
		sum := sha256.Sum256(b)
		digest = "sha256:" + hex.EncodeToString(sum[:])
		if !seen[digest] {
			seen[digest] = true
			blobs = append(blobs, blob{digest, b})
		}
		return digest
	}
	type descriptor struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int               `json:"size"`
		Platform    map[string]string `json:"platform,omitempty"`
		Annotations map[string]string `json:"annotations,omitempty"`
	}
	var index []descriptor
	for _, im := range images {
		_, tag, ok := splitRef(im.Ref)
		if !ok {
			return fmt.Errorf("image: ref %q is not NAME:TAG", im.Ref)
		}
		layer, err := Layer(im.Layer)
		if err != nil {
			return fmt.Errorf("image %s: %w", im.Ref, err)
		}
		layerDigest := add(layer)
		env := im.Env
		if env == nil {
			env = []string{"PATH=/bin:/usr/bin:/sbin:/usr/sbin"}
		}
		config, err := json.Marshal(map[string]any{
			"architecture": "amd64",
			"os":           "linux",
			"config":       map[string]any{"Entrypoint": im.Entrypoint, "Cmd": im.Cmd, "Env": env, "WorkingDir": "/"},
			"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
		})
		if err != nil {
			return err
		}
		manifest, err := json.Marshal(map[string]any{
			"schemaVersion": 2,
			"mediaType":     mediaManifest,
			"config":        descriptor{MediaType: mediaConfig, Digest: add(config), Size: len(config)},
			"layers":        []descriptor{{MediaType: mediaLayer, Digest: layerDigest, Size: len(layer)}},
		})
		if err != nil {
			return err
		}
		index = append(index, descriptor{
			MediaType: mediaManifest, Digest: add(manifest), Size: len(manifest),
			Platform: map[string]string{"architecture": "amd64", "os": "linux"},
			Annotations: map[string]string{
				"io.containerd.image.name":          im.Ref,
				"org.opencontainers.image.ref.name": tag,
			},
		})
	}
	indexJSON, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": mediaIndex, "manifests": index})
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	file := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	if err := file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return err
	}
	if err := file("index.json", indexJSON); err != nil {
		return err
	}
	for _, b := range blobs {
		if err := file("blobs/sha256/"+strings.TrimPrefix(b.digest, "sha256:"), b.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// WriteFile writes the archive to file, atomically.
func WriteFile(file string, images ...Image) error {
	tmp, err := os.CreateTemp(path.Dir(file), "."+path.Base(file)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := Write(tmp, images...); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}

// splitRef splits NAME:TAG at the last colon after the last slash.
func splitRef(ref string) (name, tag string, ok bool) {
	i := strings.LastIndexByte(ref, ':')
	if i <= 0 || i < strings.LastIndexByte(ref, '/') || i == len(ref)-1 {
		return "", "", false
	}
	return ref[:i], ref[i+1:], true
}

// Layer is the tar of entries: parent directories added as needed, entries
// sorted by path, owner root, fixed times. Its digest is the layer's diff
// id (it is not compressed).
func Layer(entries []Entry) ([]byte, error) {
	type item struct {
		path string
		e    Entry
	}
	byPath := map[string]item{}
	var dirs []string
	for _, e := range entries {
		p := strings.TrimPrefix(path.Clean("/"+e.Path), "/")
		if p == "" {
			return nil, fmt.Errorf("entry %q: empty path", e.Path)
		}
		n := 0
		for _, set := range []bool{e.Src != "", e.Link != "", e.Dir, e.Data != nil} {
			if set {
				n++
			}
		}
		if n != 1 {
			return nil, fmt.Errorf("entry %s: exactly one of Src, Link, Dir and Data must be set", p)
		}
		if _, dup := byPath[p]; dup {
			return nil, fmt.Errorf("entry %s: given twice", p)
		}
		byPath[p] = item{p, e}
		for d := path.Dir(p); d != "."; d = path.Dir(d) {
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		if it, ok := byPath[d]; ok && !it.e.Dir {
			return nil, fmt.Errorf("entry %s: a parent of other entries must be a directory", d)
		}
		if _, ok := byPath[d]; !ok {
			byPath[d] = item{d, Entry{Path: d, Dir: true}}
		}
	}
	keys := make([]string, 0, len(byPath))
	for k := range byPath {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, k := range keys {
		e := byPath[k].e
		h := &tar.Header{Name: k, ModTime: epoch, Uname: "root", Gname: "root", Format: tar.FormatPAX}
		switch {
		case e.Dir:
			h.Typeflag, h.Name, h.Mode = tar.TypeDir, k+"/", 0o755
			if k == "tmp" {
				h.Mode = 0o1777
			}
		case e.Link != "":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, e.Link, 0o777
		case e.Data != nil:
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, 0o644, int64(len(e.Data))
		default:
			fi, err := os.Stat(e.Src)
			if err != nil {
				return nil, fmt.Errorf("entry %s: %w", k, err)
			}
			if !fi.Mode().IsRegular() {
				return nil, fmt.Errorf("entry %s: %s is not a regular file", k, e.Src)
			}
			h.Typeflag, h.Mode, h.Size = tar.TypeReg, int64(fi.Mode().Perm()), fi.Size()
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if e.Data != nil {
			if _, err := tw.Write(e.Data); err != nil {
				return nil, err
			}
		}
		if e.Src != "" {
			f, err := os.Open(e.Src)
			if err != nil {
				return nil, fmt.Errorf("entry %s: %w", k, err)
			}
			_, err = io.Copy(tw, f)
			f.Close()
			if err != nil {
				return nil, fmt.Errorf("entry %s: %w", k, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
