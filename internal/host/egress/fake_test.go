package egress

import (
	"errors"
	"net/netip"
	"slices"
	"sync"

	"github.com/bangerdev/banger/internal/host/hostnet"
)

// fakeTable records the changes an Enforcer makes and holds the
// resulting elements (without timeouts running out), as the kernel's
// sets would.
type fakeTable struct {
	mu      sync.Mutex
	changes []hostnet.EgressChange
	elems   map[string][]hostnet.EgressElem // by set
	drops   []hostnet.EgressEntry
}

var _ Table = (*fakeTable)(nil)

func newFakeTable() *fakeTable { return &fakeTable{elems: map[string][]hostnet.EgressElem{}} }

func (f *fakeTable) Egress(c hostnet.EgressChange) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.changes = append(f.changes, c)
	for _, el := range c.Remove {
		f.elems[el.Set] = slices.DeleteFunc(f.elems[el.Set], func(o hostnet.EgressElem) bool { return key(o) == key(el) })
	}
	for _, el := range c.Add {
		if !slices.ContainsFunc(f.elems[el.Set], func(o hostnet.EgressElem) bool { return key(o) == key(el) }) {
			f.elems[el.Set] = append(f.elems[el.Set], el)
		}
	}
	return nil
}

// key is an element without its timeout.
func key(el hostnet.EgressElem) hostnet.EgressElem { el.Timeout = 0; return el }

func (f *fakeTable) EgressList(table, set string) ([]hostnet.EgressEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if set == hostnet.EgressDropsSet {
		return slices.Clone(f.drops), nil
	}
	var out []hostnet.EgressEntry
	for _, el := range f.elems[set] {
		en := hostnet.EgressEntry{Guest: el.Guest, Addr: el.Addr, Port: el.Port, Timeout: el.Timeout}
		if set == hostnet.EgressCIDRsSet {
			p := el.Prefix.Masked()
			en.Addr, en.Port, en.LastPort = p.Addr(), el.Ports[0], el.Ports[1]
			en.End = lastAddr(p)
		}
		out = append(out, en)
	}
	return out, nil
}

func (f *fakeTable) InNamespace(fn func() error) error { return fn() }

// elements returns the elements of set, without timeouts.
func (f *fakeTable) elements(set string) []hostnet.EgressElem {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []hostnet.EgressElem
	for _, el := range f.elems[set] {
		out = append(out, key(el))
	}
	return out
}

var errFake = errors.New("fake failure")

// lastAddr is the last address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		a[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(a)
}
