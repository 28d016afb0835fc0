package hypervisor

import (
	"context"
	"os"
	"strings"
	"testing"
)

func TestLookupVMUser(t *testing.T) {
	tests := []struct {
		name    string
		user    string
		wantErr string // "" = found
	}{
		{"root is refused", "root", "must not run as root"},
		{"missing names the command", "banger-no-such-user", "useradd --system --user-group --no-create-home"},
		{"an unprivileged user", "nobody", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := LookupVMUser(tt.user)
			if tt.wantErr == "" {
				if err != nil {
					t.Skipf("%s is not on this host: %v", tt.user, err)
				}
				if u.UID == 0 || u.Name != tt.user {
					t.Errorf("LookupVMUser(%s) = %+v", tt.user, u)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("LookupVMUser(%s) = %v, want an error with %q", tt.user, err, tt.wantErr)
			}
		})
	}
}

// TestEnsureVMUser creates the VM user as a root daemon does, twice: the
// second call finds it.
func TestEnsureVMUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a system user")
	}
	a, err := EnsureVMUser(context.Background(), DefaultVMUser)
	if err != nil {
		t.Fatal(err)
	}
	b, err := EnsureVMUser(context.Background(), DefaultVMUser)
	if err != nil || a != b || a.UID == 0 {
		t.Errorf("EnsureVMUser twice: %+v then %+v, %v", a, b, err)
	}
	if c := a.Credential(); c.Uid != a.UID || c.Gid != a.GID || len(c.Groups) != 0 {
		t.Errorf("Credential() = %+v: want the VM user's ids and no groups", c)
	}
}

func TestProcessUIDs(t *testing.T) {
	r, e, err := ProcessUIDs(os.Getpid())
	if err != nil || int(r) != os.Getuid() || int(e) != os.Geteuid() {
		t.Errorf("ProcessUIDs(self) = %d, %d, %v; want %d, %d", r, e, err, os.Getuid(), os.Geteuid())
	}
}
