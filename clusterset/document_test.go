package clusterset

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	good := func() Document {
		return Document{Cluster: "west-1", Services: []Service{
			{Namespace: "shop", Name: "web", Type: ClusterSetIP, ClusterIPs: []string{"10.97.0.10"},
				Ports: []Port{{Name: "http", Protocol: "TCP", Port: 80}}, Endpoints: []Endpoint{{IP: "10.245.1.5"}}},
			{Namespace: "shop", Name: "db", Type: Headless, Endpoints: []Endpoint{{IP: "fd00:245::5", Hostname: "db-0"}}},
		}}
	}
	if d := good(); d.Validate() != nil {
		t.Fatalf("good document refused: %v", d.Validate())
	}
	for _, tc := range []struct {
		name   string
		break_ func(d *Document)
		want   string
	}{
		{"no cluster", func(d *Document) { d.Cluster = "" }, "cluster: missing"},
		{"bad cluster", func(d *Document) { d.Cluster = "West_1" }, "cluster: \"West_1\" is not a DNS label"},
		{"bad namespace", func(d *Document) { d.Services[0].Namespace = "a.b" }, "services[0].namespace: "},
		{"no name", func(d *Document) { d.Services[1].Name = "" }, "services[1].name: missing"},
		{"bad type", func(d *Document) { d.Services[0].Type = "LoadBalancer" }, "services[0].type: \"LoadBalancer\""},
		{"ClusterSetIP without IP", func(d *Document) { d.Services[0].ClusterIPs = nil }, "services[0].clusterIPs: a ClusterSetIP service needs one"},
		{"headless with IP", func(d *Document) { d.Services[1].ClusterIPs = []string{"10.97.0.1"} }, "services[1].clusterIPs: a Headless service has none"},
		{"bad cluster IP", func(d *Document) { d.Services[0].ClusterIPs = []string{"10.97.0.300"} }, "services[0].clusterIPs[0]: \"10.97.0.300\" is not an IP address"},
		{"loopback cluster IP", func(d *Document) { d.Services[0].ClusterIPs = []string{"127.0.0.1"} }, "services[0].clusterIPs[0]: 127.0.0.1 is not a routable"},
		{"mapped endpoint", func(d *Document) { d.Services[0].Endpoints[0].IP = "::ffff:10.0.0.1" }, "services[0].endpoints[0].ip: ::ffff:10.0.0.1 is an IPv4-mapped"},
		{"zoned endpoint", func(d *Document) { d.Services[1].Endpoints[0].IP = "fd00::1%eth0" }, "services[1].endpoints[0].ip: fd00::1%eth0 has a zone"},
		{"no endpoint IP", func(d *Document) { d.Services[1].Endpoints[0].IP = "" }, "services[1].endpoints[0].ip: missing"},
		{"bad hostname", func(d *Document) { d.Services[1].Endpoints[0].Hostname = "db.0" }, "services[1].endpoints[0].hostname: "},
		{"bad protocol", func(d *Document) { d.Services[0].Ports[0].Protocol = "tcp" }, "services[0].ports[0].protocol: \"tcp\""},
		{"port 0", func(d *Document) { d.Services[0].Ports[0].Port = 0 }, "services[0].ports[0].port: 0 is not in 1-65535"},
		{"port too big", func(d *Document) { d.Services[0].Ports[0].Port = 65536 }, "services[0].ports[0].port: 65536"},
		{"bad port name", func(d *Document) { d.Services[0].Ports[0].Name = "HTTP" }, "services[0].ports[0].name: "},
		{"duplicate", func(d *Document) {
			d.Services[1].Name = "web"
			d.Services[1].Type = ClusterSetIP
			d.Services[1].ClusterIPs = []string{"10.97.0.2"}
		}, "services[1]: shop/web is listed twice (also services[0])"},
		{"too many endpoints", func(d *Document) { d.Services[1].Endpoints = make([]Endpoint, MaxEndpoints+1) }, "services[1].endpoints: 10001 endpoints"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := good()
			tc.break_(&d)
			err := d.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Validate: %v, want an error starting %q", err, tc.want)
			}
		})
	}
}
