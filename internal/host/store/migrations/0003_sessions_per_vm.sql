-- A session's id is the guest agent's, unique within one guest: a forked
-- VM's guest runs copies of its source's sessions under the same ids, so
-- sessions are keyed by (vm_id, id).
CREATE TABLE sessions_new (
    id         TEXT NOT NULL,
    vm_id      TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    state      TEXT NOT NULL,
    meta       TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (vm_id, id),
    UNIQUE (vm_id, name)
);
INSERT INTO sessions_new SELECT id, vm_id, name, state, meta, created_at, updated_at FROM sessions;
DROP TABLE sessions;
ALTER TABLE sessions_new RENAME TO sessions;
