package agentproto

import "time"

// A workspace's work: what changed in it since the host sent it, read by
// `banger vm diff` and `banger vm pull`. Both are gets (agentmux.Transfer
// with Params); the guest never writes to the workspace's working tree,
// index, refs or configuration to answer them.
const (
	// OpChanges: a get of what changed in the workspace at Path (default
	// WorkspaceDir) since it was sent, in the form ChangesParams.Format
	// asks for.
	OpChanges = "changes"
	// OpBundle: a get of a git-mode workspace's work as a git bundle (v2)
	// with the refs BundleRefHead and BundleRefWork (BundleParams).
	OpBundle = "bundle"
)

// WorkspaceParams are the params of an OpWorkspace put.
type WorkspaceParams struct {
	// Mode is the workspace's mode ("git" or "full_copy"). In full_copy
	// mode the agent records what it installed as the base OpChanges
	// compares with; in git mode the base is a commit the host sent in
	// .git (ChangesParams.Base).
	Mode string `json:"mode,omitempty"`
}

// Formats of an OpChanges get.
const (
	// ChangesSummary: a JSON Changes.
	ChangesSummary = "summary"
	// ChangesPatch: `git diff --binary` from the base to the work.
	ChangesPatch = "patch"
	// ChangesFiles: a tar stream (workspace.PackPath's format) whose one
	// top-level directory "work" holds every added, modified or
	// type-changed file (full_copy mode; `vm pull --into`).
	ChangesFiles = "files"
)

// ChangesParams are the params of an OpChanges get.
type ChangesParams struct {
	// Mode is the workspace's mode, as sent with WorkspaceParams.
	Mode string `json:"mode,omitempty"`
	// Base is the commit the host sent (git mode): its HEAD with the
	// uncommitted state it carried on top. Empty in full_copy mode, whose
	// base the agent recorded when it installed the workspace.
	Base string `json:"base,omitempty"`
	// Format is ChangesSummary, ChangesPatch or ChangesFiles.
	Format string `json:"format"`
	// Pathspec limits the comparison to these git pathspecs.
	Pathspec []string `json:"pathspec,omitempty"`
	// MaxBytes bounds the answer; the agent refuses a larger one with the
	// size it would have been (the host counts as well).
	MaxBytes int64 `json:"max_bytes,omitempty"`
	// VM names the VM, for the message of the commit that holds
	// uncommitted changes.
	VM string `json:"vm,omitempty"`
}

// BundleParams are the params of an OpBundle get.
type BundleParams struct {
	// Have are commits the host has (the sent commit and the HEAD it was
	// made on): those the guest has too become the bundle's
	// prerequisites, so their objects are not sent again.
	Have []string `json:"have,omitempty"`
	// MaxBytes bounds the bundle, as ChangesParams.MaxBytes.
	MaxBytes int64 `json:"max_bytes,omitempty"`
	// VM names the VM, as ChangesParams.VM.
	VM string `json:"vm,omitempty"`
}

// The refs an OpBundle bundle carries.
const (
	// BundleRefHead is the guest's HEAD: the commits the agent made.
	// Absent when the guest's HEAD is unborn.
	BundleRefHead = "refs/banger/head"
	// BundleRefWork is HEAD with one more commit holding the uncommitted
	// changes (untracked files included, ignored files not) when there
	// are any; HEAD itself otherwise.
	BundleRefWork = "refs/banger/work"
)

// Changes is what changed in a workspace since it was sent: the answer
// of an OpChanges get in ChangesSummary format. Everything in it comes
// from the guest: the host bounds and checks it before use.
type Changes struct {
	// Base is the commit compared with (git mode), or the agent's
	// recorded base (full_copy mode).
	Base string `json:"base,omitempty"`
	// Head is the guest's HEAD (git mode).
	Head string `json:"head,omitempty"`
	// Work is the commit holding the uncommitted changes on top of Head;
	// empty when there are none.
	Work string `json:"work,omitempty"`
	// Commits are the commits the agent made since Base's HEAD, newest
	// first, at most MaxChangedCommits.
	Commits []ChangedCommit `json:"commits,omitempty"`
	// Files are the changed files, sorted by path, at most
	// MaxChangedFiles; Truncated says there were more.
	Files     []ChangedFile `json:"files,omitempty"`
	Truncated bool          `json:"truncated,omitempty"`
}

// ChangedCommit is one commit the agent made.
type ChangedCommit struct {
	ID      string    `json:"id"`
	Subject string    `json:"subject"`
	Author  string    `json:"author"`
	Time    time.Time `json:"time"`
}

// ChangedFile is one changed path. Status is "added", "modified",
// "deleted", "renamed" (OldPath set) or "type_changed"; Added and Deleted
// count lines (zero for a binary file).
type ChangedFile struct {
	Path    string `json:"path"`
	OldPath string `json:"old_path,omitempty"`
	Status  string `json:"status"`
	Added   int    `json:"added"`
	Deleted int    `json:"deleted"`
	Binary  bool   `json:"binary,omitempty"`
}

// Bounds of a Changes.
const (
	MaxChangedCommits = 1000
	MaxChangedFiles   = 10000
)
