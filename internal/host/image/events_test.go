package image

import (
	"context"
	"testing"

	"github.com/bangerdev/banger/api"
	"github.com/bangerdev/banger/internal/host/store"
	"github.com/google/go-cmp/cmp"
)

// TestOnChange: register, promote and removal (plain, and forced while a
// VM uses the image) each reach OnChange; a change carries the image as
// GET /v1/images/{name} shows it.
func TestOnChange(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	var evs []api.Event
	f.cat.OnChange = func(ev api.Event) { evs = append(evs, ev) }
	asGET := func(name string) api.Image {
		img, err := f.cat.Get(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		a, err := f.cat.API(ctx, img)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	linked := f.request("linked")
	linked.Link = true
	var usedID string
	steps := []struct {
		name  string
		do    func() error
		want  string // "name state" or "name removed"
		image string // the image GET must match ("" for a removal)
	}{
		{"register", func() error { _, err := f.cat.Register(ctx, linked, &progressLog{}); return err },
			"linked " + api.ImageUnmanaged, "linked"},
		{"promote", func() error { _, _, err := f.cat.Promote(ctx, "linked", &progressLog{}); return err },
			"linked " + api.ImageReady, "linked"},
		{"remove", func() error { return f.cat.Remove(ctx, "linked", false) }, "linked removed", ""},
		{"register another", func() error {
			img, err := f.cat.Register(ctx, f.request("used"), &progressLog{})
			usedID = img.ID
			return err
		}, "used " + api.ImageReady, "used"},
		{"forced removal while in use", func() error {
			if err := f.cat.Store.CreateVM(ctx, store.VM{ID: "vm1", Name: "brisk-otter", ImageID: usedID, State: "running"}); err != nil {
				return err
			}
			return f.cat.Remove(ctx, "used", true)
		}, "used removed", ""},
	}
	for _, s := range steps {
		evs = nil
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if len(evs) == 0 {
			t.Fatalf("%s: no event", s.name)
		}
		last := evs[len(evs)-1]
		got := last.Name + " removed"
		if !last.Removed {
			if last.ImageState == nil || last.ImageState.ID != last.ID {
				t.Fatalf("%s: event %+v does not carry its image", s.name, last)
			}
			got = last.Name + " " + last.ImageState.State
		}
		if last.Kind != api.EventImage || got != s.want {
			t.Errorf("%s: last event %s %q, want image %q", s.name, last.Kind, got, s.want)
		}
		if s.image != "" {
			if diff := cmp.Diff(asGET(s.image), *last.ImageState); diff != "" {
				t.Errorf("%s: the event is not the image as GET shows it (-get +event):\n%s", s.name, diff)
			}
		}
	}
}
