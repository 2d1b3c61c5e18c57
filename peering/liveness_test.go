package peering

import (
	"reflect"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestLiveness(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	c := func(k wgtypes.Key, hs time.Time, rx int64) GatewayCounters {
		return GatewayCounters{PublicKey: k, LastHandshake: hs, RxBytes: rx}
	}
	var l Liveness
	steps := []struct {
		name     string
		now      int
		counters []GatewayCounters
		want     map[wgtypes.Key]time.Duration
	}{
		{name: "never heard: absent; a handshake gives its age", now: 10,
			counters: []GatewayCounters{c(keyW1, time.Time{}, 0), c(keyW2, at(4), 148)},
			want:     map[wgtypes.Key]time.Duration{keyW2: 6 * time.Second}},
		{name: "counter grew: heard at this read", now: 35,
			counters: []GatewayCounters{c(keyW1, time.Time{}, 0), c(keyW2, at(4), 180)},
			want:     map[wgtypes.Key]time.Duration{keyW2: 0}},
		{name: "counter still: age grows", now: 60,
			counters: []GatewayCounters{c(keyW1, time.Time{}, 0), c(keyW2, at(4), 180)},
			want:     map[wgtypes.Key]time.Duration{keyW2: 25 * time.Second}},
		{name: "a newer handshake wins over an older growth; growth over an older handshake", now: 70,
			counters: []GatewayCounters{c(keyW1, at(69), 92), c(keyW2, at(65), 180)},
			want:     map[wgtypes.Key]time.Duration{keyW1: 0, keyW2: 5 * time.Second}},
		{name: "counter went down (peer re-created): only the handshake counts", now: 80,
			counters: []GatewayCounters{c(keyW1, at(69), 92), c(keyW2, time.Time{}, 10)},
			want:     map[wgtypes.Key]time.Duration{keyW1: 10 * time.Second}},
		{name: "gone keys are forgotten", now: 90,
			counters: []GatewayCounters{c(keyW2, time.Time{}, 10)},
			want:     map[wgtypes.Key]time.Duration{}},
		{name: "a returning key starts afresh", now: 100,
			counters: []GatewayCounters{c(keyW1, time.Time{}, 500)},
			want:     map[wgtypes.Key]time.Duration{}},
	}
	for _, s := range steps {
		got := l.Observe(at(s.now), s.counters)
		if !reflect.DeepEqual(got, s.want) {
			t.Errorf("%s: ages %v, want %v", s.name, got, s.want)
		}
	}
}

func TestHeardByNode(t *testing.T) {
	peer := Peer{Name: "west", Gateways: []RemoteGateway{{Node: "w1", PublicKey: keyW1}, {Node: "w2", PublicKey: keyW2}}}
	got := HeardByNode(peer, map[wgtypes.Key]time.Duration{keyW2: 3 * time.Second, keyN1: time.Second})
	if !reflect.DeepEqual(got, map[string]time.Duration{"w2": 3 * time.Second}) {
		t.Errorf("HeardByNode = %v", got)
	}
	if ChooseRemoteGateway(peer.Gateways, RemoteState{Current: "w1", Since: time.Hour, LastHeard: got}) != "w2" {
		t.Error("the gateway heard from is not chosen")
	}
}
