-- Images own their boot set; artifacts are recorded one row each.
CREATE TABLE images (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    parent_id   TEXT REFERENCES images(id) ON DELETE RESTRICT,
    state       TEXT NOT NULL,
    distro      TEXT NOT NULL DEFAULT '',
    fingerprint TEXT NOT NULL DEFAULT '',
    manifest    TEXT NOT NULL DEFAULT '{}',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE TABLE image_artifacts (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    kind     TEXT NOT NULL,
    path     TEXT NOT NULL,
    sha256   TEXT NOT NULL,
    size     INTEGER NOT NULL,
    PRIMARY KEY (image_id, kind)
);

-- A VM keeps its image: the image cannot be deleted under it.
CREATE TABLE vms (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    image_id   TEXT NOT NULL REFERENCES images(id) ON DELETE RESTRICT,
    state      TEXT NOT NULL,
    spec       TEXT NOT NULL DEFAULT '{}',
    runtime    TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- One lease per VM; it goes with the VM.
CREATE TABLE network_leases (
    ip         TEXT PRIMARY KEY,
    vm_id      TEXT NOT NULL UNIQUE REFERENCES vms(id) ON DELETE CASCADE,
    mac        TEXT NOT NULL UNIQUE,
    tap        TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL
);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    vm_id      TEXT NOT NULL REFERENCES vms(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    state      TEXT NOT NULL,
    meta       TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (vm_id, name)
);

CREATE TABLE operations (
    id            TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    target        TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL,
    current_stage TEXT NOT NULL DEFAULT '',
    stages        TEXT NOT NULL DEFAULT '[]',
    result        TEXT,
    error_code    TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    finished_at   INTEGER
);
CREATE INDEX operations_by_created ON operations (created_at);

-- Facts the daemon learned about its host (e.g. the KVM boot probe).
CREATE TABLE host_facts (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
