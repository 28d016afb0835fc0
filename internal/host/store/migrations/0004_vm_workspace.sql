-- What `vm workspace prepare` last sent into a VM (api.Workspace as JSON,
-- '' until then). A column of its own, written only by SetWorkspace, so a
-- VM update racing a prepare never loses it.
ALTER TABLE vms ADD COLUMN workspace TEXT NOT NULL DEFAULT '';
