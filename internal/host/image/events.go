package image

import (
	"context"

	"github.com/bangerdev/banger/api"
)

// changed tells OnChange what the store now holds for the image: it is
// read back and converted the way GET /v1/images/{name} does. An image
// left as a "removed" record (forced removal while in use) is no longer
// listed, so it is reported as Removed.
func (c *Catalog) changed(ctx context.Context, id string) {
	if c.OnChange == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	img, err := c.Get(ctx, id)
	if err != nil {
		c.Log.Warn("reading a changed image back for the event feed", "image", id, "error", err)
		return
	}
	if img.State == "removed" {
		c.removed(img)
		return
	}
	a, err := c.API(ctx, img)
	if err != nil {
		c.Log.Warn("reading a changed image back for the event feed", "image", id, "error", err)
		return
	}
	c.OnChange(api.Event{Kind: api.EventImage, ID: a.ID, Name: a.Name, ImageState: &a})
}

// removed tells OnChange that the image is gone from the list.
func (c *Catalog) removed(img Image) {
	if c.OnChange != nil {
		c.OnChange(api.Event{Kind: api.EventImage, ID: img.ID, Name: img.Name, Removed: true})
	}
}

// UsersChanged tells OnChange the image's state after the set of VMs
// using it changed (one was created from it, or deleted), since its
// UsedBy did. A removed or missing image is not reported.
func (c *Catalog) UsersChanged(ctx context.Context, id string) {
	if c.OnChange == nil {
		return
	}
	if img, err := c.Get(context.WithoutCancel(ctx), id); err != nil || img.State == "removed" {
		return
	}
	c.changed(ctx, id)
}
