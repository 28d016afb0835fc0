package hostnet

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/google/go-cmp/cmp"
	"slices"
)

// fakeHost is a hand-written Host that keeps a State and applies steps to
// it the way the kernel would, recording every step. fail, when set, is
// asked before each step; a non-nil error stops Apply there, as the
// Executor does.
type fakeHost struct {
	st      State
	applied []Step
	fail    func(Step) error
}

func (f *fakeHost) Observe(ctx context.Context, cfg Config) (State, error) {
	return cloneState(f.st), nil
}

func (f *fakeHost) Apply(ctx context.Context, steps []Step) error {
	for _, s := range steps {
		if f.fail != nil {
			if err := f.fail(s); err != nil {
				return &StepError{Step: s, Err: err, Fix: fixFor(s, err)}
			}
		}
		f.applied = append(f.applied, s)
		f.apply(s)
	}
	return nil
}

func (f *fakeHost) tap(name string) *TAPState {
	for i := range f.st.TAPs {
		if f.st.TAPs[i].Name == name {
			return &f.st.TAPs[i]
		}
	}
	return nil
}

func (f *fakeHost) apply(s Step) {
	switch s := s.(type) {
	case EnsureBridge:
		if !f.st.Bridge.Exists {
			f.st.Bridge = BridgeState{Exists: true, Kind: "bridge", MAC: s.MAC}
		}
	case SetBridgeAddr:
		if !slices.Contains(f.st.Bridge.Addrs, s.Addr) {
			f.st.Bridge.Addrs = append(f.st.Bridge.Addrs, s.Addr)
		}
	case DelBridgeAddr:
		f.st.Bridge.Addrs = slices.DeleteFunc(f.st.Bridge.Addrs, func(a netip.Prefix) bool { return a == s.Addr })
	case SetLinkUp:
		if t := f.tap(s.Name); t != nil {
			t.Up = true
		} else {
			f.st.Bridge.Up = true
		}
	case CreateTAP:
		if f.tap(s.Name) == nil {
			n, _ := parseTAPName(s.Name)
			f.st.TAPs = append(f.st.TAPs, TAPState{Name: s.Name, N: n, Kind: "tap", Owner: s.Owner})
			slices.SortFunc(f.st.TAPs, func(a, b TAPState) int { return a.N - b.N })
		}
	case AttachToBridge:
		t := f.tap(s.Name)
		if t.Master != s.Bridge {
			t.Master, t.Isolated = s.Bridge, false
		}
	case SetIsolated:
		f.tap(s.Name).Isolated = true
	case DeleteLink:
		f.st.TAPs = slices.DeleteFunc(f.st.TAPs, func(t TAPState) bool { return t.Name == s.Name })
		if _, isTAP := parseTAPName(s.Name); !isTAP {
			f.st.Bridge = BridgeState{}
		}
	case FlushPort:
	case EnableForwarding:
		f.st.Forwarding = true
	case EnsureNFTable:
		t := cloneState(State{Table: &s.Table}).Table
		if t.Family == "bridge" {
			f.st.AntiSpoof = cloneState(State{AntiSpoof: t}).AntiSpoof
		} else {
			f.st.Table = t
		}
	case Bind:
		set := &f.st.AntiSpoof.Sets[0]
		for _, b := range s.Bindings {
			if !slices.ContainsFunc(set.Elements, func(k []byte) bool { return slices.Equal(k, b.key()) }) {
				set.Elements = append(set.Elements, b.key())
			}
		}
	case Unbind:
		set := &f.st.AntiSpoof.Sets[0]
		for _, b := range s.Bindings {
			set.Elements = slices.DeleteFunc(set.Elements, func(k []byte) bool { return slices.Equal(k, b.key()) })
		}
	case DeleteNFTable:
		if s.Family == "bridge" {
			f.st.AntiSpoof = nil
		} else {
			f.st.Table = nil
		}
	default:
		panic(fmt.Sprintf("fakeHost: unknown step %T", s))
	}
}

func cloneState(st State) State {
	st.TAPs = slices.Clone(st.TAPs)
	st.Bridge.Addrs = slices.Clone(st.Bridge.Addrs)
	if st.Table != nil {
		t := *st.Table
		st.Table = &t
	}
	if st.AntiSpoof != nil {
		t := *st.AntiSpoof
		t.Sets = slices.Clone(t.Sets)
		for i := range t.Sets {
			t.Sets[i].Elements = slices.Clone(t.Sets[i].Elements)
		}
		st.AntiSpoof = &t
	}
	return st
}

// cmpOpts lets go-cmp compare values holding netip types.
var cmpOpts = []cmp.Option{
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
}
