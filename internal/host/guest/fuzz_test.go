package guest

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/bangerdev/banger/internal/shared/agentproto"
)

// FuzzDiffSummary: whatever JSON a guest answers vm diff with, the daemon
// either refuses it or passes on only full commit ids, known statuses,
// non-negative counts whose totals add up, within the bounds.
func FuzzDiffSummary(f *testing.F) {
	f.Add([]byte(`{"base":"` + hex40 + `","head":"` + hex40 + `","work":"` + hex40 + `","commits":[{"id":"` + hex40 + `","subject":"s","author":"a","time":"2026-01-01T00:00:00Z"}],"files":[{"path":"a","status":"modified","added":1,"deleted":2},{"path":"b","old_path":"c","status":"renamed","added":0,"deleted":0,"binary":true}]}`))
	f.Add([]byte(`{"files":[{"path":"a","status":"copied"}]}`))
	f.Add([]byte(`{"files":[{"path":"a","status":"added","added":-1}]}`))
	f.Add([]byte(`{"commits":[{"id":"ABC"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var ch agentproto.Changes
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if dec.Decode(&ch) != nil {
			return
		}
		d, err := checkChanges(ch)
		if err != nil {
			return
		}
		added, deleted := 0, 0
		for _, c := range d.Commits {
			if !isCommitID(c.ID) {
				t.Fatalf("passed commit id %q", c.ID)
			}
		}
		for _, f := range d.Files {
			if !slices.Contains(fileStatuses, f.Status) || f.Path == "" || f.Added < 0 || f.Deleted < 0 {
				t.Fatalf("passed file %+v", f)
			}
			added += f.Added
			deleted += f.Deleted
		}
		if added != d.Added || deleted != d.Deleted || len(d.Files) > agentproto.MaxChangedFiles || len(d.Commits) > agentproto.MaxChangedCommits {
			t.Fatalf("totals %d/%d of %d/%d, %d files, %d commits", d.Added, d.Deleted, added, deleted, len(d.Files), len(d.Commits))
		}
	})
}

const hex40 = "0123456789abcdef0123456789abcdef01234567"
