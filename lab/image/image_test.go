package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readArchive returns every file of an archive by name.
func readArchive(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		out[h.Name] = data
	}
}

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "tool")
	if err := os.WriteFile(bin, []byte("#!binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	layer := []Entry{{Path: "/bin/tool", Src: bin}, {Path: "bin/sh", Link: "tool"}, {Path: "tmp", Dir: true}, {Path: "etc/passwd", Data: []byte("root:x:0:0::/:/bin/sh\n")}}
	ims := []Image{
		{Ref: "registry.k8s.io/pause:3.10", Entrypoint: []string{"/bin/tool", "pause"}, Layer: layer},
		{Ref: "example.org/tools/tool:1.0", Cmd: []string{"sh"}, Layer: layer},
	}
	var a, b bytes.Buffer
	if err := Write(&a, ims...); err != nil {
		t.Fatal(err)
	}
	if err := Write(&b, ims...); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two writes of the same images differ")
	}
	files := readArchive(t, a.Bytes())
	var index struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	if err := json.Unmarshal(files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Manifests) != 2 || index.Manifests[0].Annotations["io.containerd.image.name"] != "registry.k8s.io/pause:3.10" ||
		index.Manifests[1].Annotations["org.opencontainers.image.ref.name"] != "1.0" {
		t.Fatalf("index: %s", files["index.json"])
	}
	blob := func(digest string) []byte {
		b, ok := files["blobs/sha256/"+strings.TrimPrefix(digest, "sha256:")]
		if !ok {
			t.Fatalf("no blob %s", digest)
		}
		sum := sha256.Sum256(b)
		if "sha256:"+hex.EncodeToString(sum[:]) != digest {
			t.Fatalf("blob %s has another digest", digest)
		}
		return b
	}
	var layers []string
	for _, m := range index.Manifests {
		var man struct {
			Config struct{ Digest string }
			Layers []struct{ Digest, MediaType string }
		}
		if err := json.Unmarshal(blob(m.Digest), &man); err != nil {
			t.Fatal(err)
		}
		var cfg struct {
			Config struct{ Entrypoint, Cmd []string }
			RootFS struct {
				DiffIDs []string `json:"diff_ids"`
			} `json:"rootfs"`
		}
		if err := json.Unmarshal(blob(man.Config.Digest), &cfg); err != nil {
			t.Fatal(err)
		}
		if len(man.Layers) != 1 || cfg.RootFS.DiffIDs[0] != man.Layers[0].Digest {
			t.Fatalf("an uncompressed layer's diff id is its digest: %+v %+v", man, cfg)
		}
		layers = append(layers, man.Layers[0].Digest)
	}
	if layers[0] != layers[1] {
		t.Error("the same layer got two digests")
	}
	entries := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(blob(layers[0])))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = h
	}
	if h := entries["bin/"]; h == nil || h.Typeflag != tar.TypeDir {
		t.Error("parent directory bin/ missing")
	}
	if h := entries["bin/tool"]; h == nil || h.Mode != 0o755 || h.Size != 8 {
		t.Errorf("bin/tool = %+v", h)
	}
	if h := entries["bin/sh"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "tool" {
		t.Errorf("bin/sh = %+v", h)
	}
	if h := entries["etc/passwd"]; h == nil || h.Typeflag != tar.TypeReg || h.Size != 22 {
		t.Errorf("etc/passwd = %+v", h)
	}
	if h := entries["tmp/"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp/ = %+v", h)
	}
}

func TestBadInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		im   Image
		want string
	}{
		{"no tag", Image{Ref: "registry.k8s.io/pause", Layer: []Entry{{Path: "x", Dir: true}}}, "NAME:TAG"},
		{"port is no tag", Image{Ref: "localhost:5000/pause", Layer: []Entry{{Path: "x", Dir: true}}}, "NAME:TAG"},
		{"two kinds", Image{Ref: "a:1", Layer: []Entry{{Path: "x", Dir: true, Link: "y"}}}, "exactly one"},
		{"none", Image{Ref: "a:1", Layer: []Entry{{Path: "x"}}}, "exactly one"},
		{"twice", Image{Ref: "a:1", Layer: []Entry{{Path: "x", Dir: true}, {Path: "/x", Dir: true}}}, "twice"},
		{"parent not a dir", Image{Ref: "a:1", Layer: []Entry{{Path: "x", Link: "y"}, {Path: "x/z", Dir: true}}}, "parent"},
		{"missing source", Image{Ref: "a:1", Layer: []Entry{{Path: "x", Src: "/nonexistent/file"}}}, "no such file"},
		{"source is a dir", Image{Ref: "a:1", Layer: []Entry{{Path: "x", Src: "/"}}}, "not a regular file"},
		{"empty path", Image{Ref: "a:1", Layer: []Entry{{Path: "/", Dir: true}}}, "empty path"},
	} {
		err := Write(io.Discard, tc.im)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	if err := Write(io.Discard); err == nil {
		t.Error("no images: no error")
	}
}
