package api

import "time"

// Workspace is what `banger vm workspace prepare` (or vm run) last sent
// into a VM: the base `vm diff` and `vm pull` compare the guest's work
// with.
type Workspace struct {
	// Dir is the guest directory, e.g. /root/repo.
	Dir string `json:"dir"`
	// Mode is WorkspaceGit or WorkspaceFullCopy.
	Mode string `json:"mode"`
	// HostPath is the host checkout it came from (the top of its work
	// tree in git mode).
	HostPath string `json:"host_path"`
	// Head is the host's HEAD commit when it was sent (git mode; empty
	// for a repository without commits).
	Head string `json:"head,omitempty"`
	// Sent is the commit of what was sent (git mode): Head with the
	// uncommitted changes and untracked files it carried on top, or Head
	// itself when there were none. The host repository keeps it at
	// SentRef(vm).
	Sent string `json:"sent,omitempty"`
	// PreparedAt is when it was sent.
	PreparedAt time.Time `json:"prepared_at"`
}

// SentRefPrefix is where a host repository keeps the commit of what was
// sent to each VM (Workspace.Sent): SentRefPrefix + the VM's name.
const SentRefPrefix = "refs/banger/sent/"

// PrepareWorkspaceRequest describes a workspace tar stream for the
// record the daemon keeps (Workspace); it travels as the query of
// PUT /v1/vms/{name}/workspace.
type PrepareWorkspaceRequest struct {
	Dir      string
	Mode     string
	HostPath string
	Head     string
	Sent     string
}

// WorkspaceDiff is what changed in a VM's workspace since it was sent,
// as the guest reports it (GET /v1/vms/{name}/workspace/diff). It is the
// guest's account, checked for shape and bounded by the daemon; `vm pull`
// verifies the objects themselves on the host.
type WorkspaceDiff struct {
	VM        string    `json:"vm"`
	Workspace Workspace `json:"workspace"`
	// Head is the guest's HEAD (git mode).
	Head string `json:"head,omitempty"`
	// Uncommitted says the workspace has changes not committed in the
	// guest (untracked files included, ignored ones not).
	Uncommitted bool `json:"uncommitted"`
	// Commits are the commits made in the guest since it was sent, newest
	// first (at most 1000).
	Commits []WorkspaceCommit `json:"commits"`
	// Files are the changed paths sorted by path (at most 10000);
	// Truncated says there were more.
	Files     []WorkspaceFile `json:"files"`
	Truncated bool            `json:"truncated,omitempty"`
	// Added and Deleted total the files' changed lines.
	Added   int `json:"added"`
	Deleted int `json:"deleted"`
}

// WorkspaceCommit is a commit made in the guest.
type WorkspaceCommit struct {
	ID      string    `json:"id"`
	Subject string    `json:"subject"`
	Author  string    `json:"author"`
	Time    time.Time `json:"time"`
}

// WorkspaceFile is one changed path: Status is one of the FileAdded...
// constants; OldPath is set for FileRenamed; Added and Deleted count
// lines (zero for a binary file).
type WorkspaceFile struct {
	Path    string `json:"path"`
	OldPath string `json:"old_path,omitempty"`
	Status  string `json:"status"`
	Added   int    `json:"added"`
	Deleted int    `json:"deleted"`
	Binary  bool   `json:"binary,omitempty"`
}

// WorkspaceFile statuses.
const (
	FileAdded       = "added"
	FileModified    = "modified"
	FileDeleted     = "deleted"
	FileRenamed     = "renamed"
	FileTypeChanged = "type_changed"
)

// ContentTypePatch is the media type of a workspace patch (diff?format=patch).
const ContentTypePatch = "text/x-diff"

// ContentTypeBundle is the media type of a git bundle (workspace/bundle).
const ContentTypeBundle = "application/x-git-bundle"
