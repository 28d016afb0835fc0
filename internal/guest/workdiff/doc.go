// Package workdiff answers what changed in a workspace since the host sent
// it: a summary (agentproto.Changes), a patch, the changed files (full_copy
// mode) or a git bundle of the guest's commits (git mode). It is the guest
// side of `banger vm diff` and `banger vm pull`.
//
// It never touches the workspace's working tree, index, refs or
// configuration, and writes nothing to its git directory. The uncommitted
// state (untracked files included, ignored ones not in git mode) becomes
// one synthetic commit W on top of HEAD, made with a temporary index (a
// copy of the real one, for speed) and a temporary object directory that
// borrows the repository's objects as an alternate; both are removed when
// the answer is sent. (Git may still freshen the mtime of an object of the
// repository it would have written again; no content changes.) A path git
// cannot add, such as a nested repository without a commit, keeps what
// the index held for it. In full_copy mode the base is a commit of the
// tree the agent installed (RecordBase), kept in a git directory banger
// owns under a state directory, outside the workspace; nested
// repositories are gitlinks there, listed but not sent as files.
//
// Git runs directly (no shell) with an environment built from scratch (no
// GIT_* variable of the agent's, C locale, no system or global config, HOME
// an empty directory) and configuration overrides so that nothing the
// repository configures runs a program: hooks (core.hooksPath=/dev/null),
// core.fsmonitor, commit signing, automatic gc, external diff and textconv
// drivers (--no-ext-diff, --no-textconv) and every filter driver the
// repository's config names (clean, smudge and process emptied, required
// off). The repository's attributes still decide end-of-line and
// working-tree-encoding conversion, which run no program.
//
// Every answer is built in a temporary file first and refused, before a
// byte is sent, when it exceeds the caller's MaxBytes (an error wrapping
// workspace.ErrTooLarge that names the host's pull.max_size).
package workdiff
