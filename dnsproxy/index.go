package dnsproxy

// The records' indexes are two-level maps: an outer key (a Service, an
// address) to the keys of the EndpointSlices under it, each with a value
// (a hostname, or nothing). An outer key without slices is removed, so
// the maps hold only what exists.

// indexAdd puts slice key under k with value v.
func indexAdd[K comparable, V any](m map[K]map[string]V, k K, key string, v V) {
	if m[k] == nil {
		m[k] = map[string]V{}
	}
	m[k][key] = v
}

// indexRemove takes slice key from under k, and k when nothing is left.
func indexRemove[K comparable, V any](m map[K]map[string]V, k K, key string) {
	delete(m[k], key)
	if len(m[k]) == 0 {
		delete(m, k)
	}
}
