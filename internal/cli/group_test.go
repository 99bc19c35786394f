package cli

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

func TestFindGroup(t *testing.T) {
	const db = `# comment
root:x:0:
wheel:x:10:alice,bob
+nis
lockers:*:1234:
broken:x:nope:
`
	tests := []struct {
		name    string
		gid     int
		found   bool
		wantErr bool
	}{
		{"root", 0, true, false},
		{"wheel", 10, true, false},
		{"lockers", 1234, true, false},
		{"locker", 0, false, false},
		{"nis", 0, false, false},
		{"broken", 0, false, true},
		{"", 0, false, false},
	}
	for _, tt := range tests {
		gid, found, err := findGroup(strings.NewReader(db), tt.name)
		if gid != tt.gid || found != tt.found || (err != nil) != tt.wantErr {
			t.Errorf("findGroup(%q) = %d, %v, %v; want %d, %v, error %v", tt.name, gid, found, err, tt.gid, tt.found, tt.wantErr)
		}
	}
}

// TestGroupIDMatchesGetent checks groupID against getent(1), which asks
// the C library, as os/user did, for every group on this machine.
func TestGroupIDMatchesGetent(t *testing.T) {
	out, err := exec.Command("getent", "group").Output()
	if err != nil {
		t.Skipf("getent: %v", err)
	}
	n := 0
	for line := range strings.Lines(string(out)) {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) < 3 {
			continue
		}
		want, err := strconv.Atoi(f[2])
		if err != nil {
			continue
		}
		got, err := groupID(f[0])
		if err != nil || got != want {
			t.Errorf("groupID(%q) = %d, %v; getent says %d", f[0], got, err, want)
		}
		n++
	}
	if n == 0 {
		t.Fatal("getent listed no groups")
	}
	if _, err := groupID("no-such-group-lockdir"); err == nil {
		t.Error("groupID of a missing group succeeded")
	}
}
