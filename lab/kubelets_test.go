package lab

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/weftnet/weft/lab/image"
)

func TestLabImages(t *testing.T) {
	extra := []image.Entry{{Path: "usr/bin/nc", Src: "/usr/bin/nc.openbsd"}, {Path: "bin/bash", Src: "/usr/bin/bash"}, {Path: "/lib/x86_64-linux-gnu/libc.so.6", Src: "/lib/x86_64-linux-gnu/libc.so.6"}}
	ims := LabImages("/opt/agnhost", "/bin/busybox", []string{"sh", "nc", "wget", "busybox", "/weird"}, extra)
	refs := map[string]image.Image{}
	for _, im := range ims {
		refs[im.Ref] = im
	}
	for _, ref := range []string{"registry.k8s.io/pause:3.10", AgnhostImage, BusyboxImage, DNSUtilsImage,
		"registry.k8s.io/e2e-test-images/nginx:1.14-4", "registry.k8s.io/e2e-test-images/httpd:2.4.38-4"} {
		if _, ok := refs[ref]; !ok {
			t.Errorf("no image %s", ref)
		}
	}
	if got := refs["registry.k8s.io/pause:3.10"].Entrypoint; !slices.Equal(got, []string{"/agnhost", "pause"}) {
		t.Errorf("pause entrypoint = %v", got)
	}
	if im := refs[AgnhostImage]; !slices.Equal(im.Entrypoint, []string{"/agnhost"}) || !slices.Equal(im.Cmd, []string{"pause"}) {
		t.Errorf("agnhost = %v %v, want the upstream image's /agnhost pause", im.Entrypoint, im.Cmd)
	}
	paths := map[string]image.Entry{}
	for _, e := range ims[0].Layer {
		paths[e.Path] = e
	}
	if e, ok := paths["bin/sh"]; !ok || e.Link != "bash" {
		t.Errorf("bin/sh = %+v", e)
	}
	if _, ok := paths["bin/nc"]; ok {
		t.Error("busybox's nc shadows the image's /usr/bin/nc")
	}
	if _, ok := paths["bin/busybox"]; !ok || paths["usr/bin/nc"].Src != "/usr/bin/nc.openbsd" {
		t.Errorf("layer lacks busybox or nc: %v", paths)
	}
	for _, im := range ims[1:] {
		if len(im.Layer) != len(ims[0].Layer) {
			t.Errorf("%s has a layer of its own", im.Ref)
		}
	}
}

func TestCRIConfList(t *testing.T) {
	b, err := criConfList(Layout{Root: "/run/weft-lab", Name: "k1"}.Node("n1"))
	if err != nil {
		t.Fatal(err)
	}
	var cl struct {
		CNIVersion string `json:"cniVersion"`
		Plugins    []map[string]any
	}
	if err := json.Unmarshal(b, &cl); err != nil {
		t.Fatal(err)
	}
	if cl.CNIVersion != "1.0.0" || len(cl.Plugins) != 2 || cl.Plugins[0]["type"] != "weft-cni" ||
		cl.Plugins[0]["stateFile"] != "/run/weft-lab/k1/n1/node.json" || cl.Plugins[1]["type"] != "portmap" {
		t.Fatalf("conflist:\n%s", b)
	}
	if caps, _ := cl.Plugins[1]["capabilities"].(map[string]any); caps["portMappings"] != true {
		t.Errorf("portmap without the portMappings capability:\n%s", b)
	}
}
