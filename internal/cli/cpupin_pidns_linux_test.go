package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPinThreadsForeignPIDNamespace (reviews 17 and 18): a lockdir in a
// PID namespace of its own whose /proc is still the parent namespace's
// (unshare -pf without --mount-proc, a container given the host's /proc)
// reads its threads' IDs in /proc/self/task as the parent namespace numbers
// them, but sched_setaffinity(2) takes IDs as lockdir's own namespace
// numbers them: pinThreads must not set those numbers, which may be other
// processes'. Here 300 processes of lockdir's namespace, from 150 numbers
// on, so that other processes forking on a busy host do not push lockdir's
// numbers past them, fill the numbers that lockdir's threads get in the
// parent namespace, with the affinity the test started with (two CPUs or
// more), which any pin to one CPU changes; none may be moved. (Review 18:
// victims on one CPU could not show a pin to that CPU.)
func TestPinThreadsForeignPIDNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for unshare -p")
	}
	for _, c := range []string{"unshare", "taskset", "sh", "sleep"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("needs %s", c)
		}
	}
	var orig unix.CPUSet
	if err := unix.SchedGetaffinity(0, &orig); err != nil || orig.Count() < 2 {
		t.Skip("this process may run on one CPU only: lockdir pins nothing")
	}
	bin, dir := lockdirBinary(t), filepath.Join(t.TempDir(), "ld")
	if out, err := exec.Command(bin, "--dir", dir, "init").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	script := fmt.Sprintf(`
H=$(readlink /proc/self)
want=$(taskset -cp $$ | sed 's/.*: //')
echo $((H+150)) >/proc/sys/kernel/ns_last_pid || exit 9
for i in $(seq 300); do sleep 30 & done
%s --dir %s lock 7 -- true || echo "lockdir failed: $?"
for p in $(seq $((H+151)) $((H+450))); do
	a=$(taskset -cp $p 2>/dev/null) || continue
	case "$a" in
	*": $want") ;;
	*) echo "process $p of lockdir's namespace (not lockdir): $a, want $want" ;;
	esac
done
kill $(jobs -p) 2>/dev/null
exit 0
`, bin, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "unshare", "-pf", "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Skipf("unshare -pf: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("'lockdir lock' in a PID namespace with its parent's /proc changed other processes' CPU affinity:\n%s", s)
	}
}
