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
	needUnshare(t)
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

// TestPinThreadsProbeSkipsNeighbours (review 19): lockdir finds its
// threads by trying the IDs after its PID with tgkill(2)'s signal 0, which
// answers only for lockdir's own threads. Here, in a PID namespace of its
// own, lockdir gets PID 99 and its first thread after that 100, while three
// sleeping processes of the test hold 101-103, with the test's two or more
// CPUs: lockdir's other threads come after them, the probe must step over
// them to find them, and must pin lockdir's threads and not the sleepers.
func TestPinThreadsProbeSkipsNeighbours(t *testing.T) {
	needUnshare(t)
	pinnable(t)
	bin, dir := lockdirBinary(t), filepath.Join(t.TempDir(), "ld")
	if out, err := exec.Command(bin, "--dir", dir, "init").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	script := fmt.Sprintf(`
want=$(taskset -cp $$ | sed 's/.*: //')
echo 100 >/proc/sys/kernel/ns_last_pid || exit 9
sleep 30 & sleep 30 & sleep 30 &
echo 98 >/proc/sys/kernel/ns_last_pid
sh -c 'exec %s --dir %s lock 7 -- sh -c "echo lockdir \$PPID; grep -H Cpus_allowed_list /proc/\$PPID/task/*/status"'
for p in 101 102 103; do
	a=$(taskset -cp $p)
	case "$a" in
	*": $want") echo "sleeper $p unmoved" ;;
	*) echo "sleeper $p: $a, want $want" ;;
	esac
done
kill 101 102 103
`, bin, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := exec.CommandContext(ctx, "unshare", "-pf", "--mount-proc", "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Skipf("unshare -pf --mount-proc: %v\n%s", err, b)
	}
	out := string(b)
	if !strings.Contains(out, "lockdir 99\n") {
		t.Skipf("lockdir did not get PID 99 next to the sleepers:\n%s", out)
	}
	var single, free int
	beyond := false
	for line := range strings.Lines(out) {
		task, cpus, ok := strings.Cut(strings.TrimSpace(line), ":Cpus_allowed_list:")
		if !ok {
			continue
		}
		var tid int
		fmt.Sscanf(task, "/proc/99/task/%d/status", &tid)
		beyond = beyond || tid > 103
		if strings.ContainsAny(strings.TrimSpace(cpus), ",-") {
			free++
		} else {
			single++
		}
	}
	if strings.Count(out, "unmoved") != 3 || !beyond || free != 1 || single < 2 {
		t.Errorf("want the three sleepers unmoved, and lockdir's threads, some beyond them, pinned but the forking one; got %d pinned, %d not:\n%s", single, free, out)
	}
}

// needUnshare skips the test unless it runs as root, for unshare -p, with
// the commands that the tests' scripts run.
func needUnshare(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for unshare -p")
	}
	for _, c := range []string{"unshare", "taskset", "sh", "sleep"} {
		if _, err := exec.LookPath(c); err != nil {
			t.Skipf("needs %s", c)
		}
	}
}
