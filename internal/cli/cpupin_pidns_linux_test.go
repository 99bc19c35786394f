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

// TestPinThreadsForeignPIDNamespace (review 17): a lockdir in a PID
// namespace of its own whose /proc is still the parent namespace's (unshare
// -pf without --mount-proc, a container given the host's /proc) reads its
// threads' IDs in /proc/self/task as the parent namespace numbers them, but
// sched_setaffinity(2) takes IDs as lockdir's own namespace numbers them.
// pinThreads and release then set the CPU affinity of whatever processes of
// lockdir's namespace have those numbers: they are left on lockdir's CPUs
// instead of their own. Here 100 processes on one CPU fill the numbers that
// lockdir's threads get in the parent namespace; none may be moved.
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
	victimCPU := -1
	for i := 0; i < 1024; i++ {
		if orig.IsSet(i) {
			victimCPU = i
			break
		}
	}
	bin, dir := lockdirBinary(t), filepath.Join(t.TempDir(), "ld")
	if out, err := exec.Command(bin, "--dir", dir, "init").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	// Inside the new namespace: /proc/self is the parent namespace's view
	// (readlink gives the parent's number H of the shell's child); writing
	// ns_last_pid sets the new namespace's next number, so that the victims
	// get numbers H+51..H+150 there, while in the parent namespace they and
	// then lockdir's threads get numbers from about H+1 on.
	script := fmt.Sprintf(`
H=$(readlink /proc/self)
echo $((H+50)) >/proc/sys/kernel/ns_last_pid || exit 9
for i in $(seq 100); do taskset -c %d sleep 30 & done
%s --dir %s lock 7 -- true || echo "lockdir failed: $?"
for p in $(seq $((H+51)) $((H+150))); do
	a=$(taskset -cp $p 2>/dev/null) || continue
	case "$a" in
	*": %d") ;;
	*) echo "process $p of lockdir's namespace (not lockdir): $a" ;;
	esac
done
kill $(jobs -p) 2>/dev/null
exit 0
`, victimCPU, bin, dir, victimCPU)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "unshare", "-pf", "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Skipf("unshare -pf: %v\n%s", err, out)
	}
	if s := strings.TrimSpace(string(out)); s != "" {
		t.Errorf("'lockdir lock' in a PID namespace with its parent's /proc changed other processes' CPU affinity (they were on CPU %d):\n%s", victimCPU, s)
	}
}
