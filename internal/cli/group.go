package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/lockdir/lockdir/filelock"
)

// groupID returns the GID of the group called name.
//
// It reads /etc/group itself, and asks getent(1) only for a name that file
// lacks (a group from LDAP or another NSS source). os/user would do the
// same through the C library, but importing it links cgo and the C
// library's start-up into every run of lockdir, a millisecond of the
// `lockdir lock ID -- cmd` that scripts call in loops.
func groupID(name string) (int, error) {
	if f, err := os.Open("/etc/group"); err == nil {
		gid, found, err := findGroup(f, name)
		f.Close()
		if err != nil || found {
			return gid, err
		}
	}
	out, err := exec.Command("getent", "group", name).Output()
	if err != nil {
		return 0, fmt.Errorf("group %q not found", name)
	}
	gid, found, err := findGroup(bytes.NewReader(out), name)
	if err == nil && !found {
		err = fmt.Errorf("group %q not found", name)
	}
	return gid, err
}

// findGroup looks for name in r, in the format of group(5):
// "name:password:GID:members".
func findGroup(r io.Reader, name string) (gid int, found bool, err error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) < 3 || f[0] != name {
			continue
		}
		n, err := strconv.Atoi(f[2])
		if err != nil || n < 0 {
			return 0, false, fmt.Errorf("group %q has a bad GID %q in the group database", name, f[2])
		}
		return n, true, nil
	}
	return 0, false, sc.Err()
}

// groupName is --group or $LOCKDIR_GROUP.
func (g *globals) groupName() string {
	if g.group != "" {
		return g.group
	}
	return os.Getenv("LOCKDIR_GROUP")
}

// options returns the filelock options that --group or $LOCKDIR_GROUP
// asks for.
func (g *globals) options() ([]filelock.Option, error) {
	group := g.groupName()
	if group == "" {
		return nil, nil
	}
	gid, err := lookupGroup(group)
	if err != nil {
		return nil, errorf(exitUsage, "pass a group name from /etc/group or a numeric GID",
			"--group %s: %v", group, err)
	}
	return []filelock.Option{filelock.WithSharedGroup(gid)}, nil
}

// lookupGroup resolves a group name or numeric GID.
func lookupGroup(group string) (int, error) {
	if n, err := strconv.Atoi(group); err == nil {
		if n < 0 {
			return 0, errors.New("a GID is not negative")
		}
		return n, nil
	}
	return groupID(group)
}
