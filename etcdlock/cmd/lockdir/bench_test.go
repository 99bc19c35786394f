package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lockdir/lockdir/etcdlock/internal/etcdtest"
)

// BenchmarkLockStartup measures a whole 'lockdir lock 7 -- true', a fresh
// process each time, in the same run: true alone (the floor of a fork and
// exec), the plain lockdir on a lock directory, this etcd-enabled lockdir
// on a lock directory, and on the etcd embedded in the benchmark's process
// (so that the server's work shares the machine, as a local member's
// would). docs/etcd.md reports the ratios.
//
//	go test -run '^$' -bench LockStartup -count 6 ./cmd/lockdir
func BenchmarkLockStartup(b *testing.B) {
	bin := b.TempDir()
	for _, p := range []struct{ out, pkg string }{
		{"lockdir-plain", "github.com/lockdir/lockdir/cmd/lockdir"},
		{"lockdir-etcd", "github.com/lockdir/lockdir/etcdlock/cmd/lockdir"},
	} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, p.out), p.pkg).CombinedOutput(); err != nil {
			b.Fatalf("go build %s: %v\n%s", p.pkg, err, out)
		}
	}
	server, err := etcdtest.Start(filepath.Join(b.TempDir(), "etcd"), 1, etcdtest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer server.Close()
	ep := strings.TrimPrefix(server.Endpoints()[0], "http://")
	dir := filepath.Join(b.TempDir(), "ld")
	truePath, err := exec.LookPath("true")
	if err != nil {
		b.Fatal(err)
	}
	variants := []struct {
		name string
		argv []string
	}{
		{"true", []string{truePath}},
		{"plain-files", []string{filepath.Join(bin, "lockdir-plain"), "--dir", dir, "lock", "7", "--", "true"}},
		{"etcd-build-files", []string{filepath.Join(bin, "lockdir-etcd"), "--dir", dir, "lock", "7", "--", "true"}},
		{"etcd-build-etcd", []string{filepath.Join(bin, "lockdir-etcd"), "--etcd", ep, "lock", "7", "--", "true"}},
	}
	run := func(argv []string) time.Duration {
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(), "LOCKDIR_ETCD=")
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", argv, err, out)
		}
		return time.Since(start)
	}
	// One run outside the timing creates the directory and the lock
	// space, as a script's earlier call would have.
	for _, v := range variants {
		run(v.argv)
	}
	// Each iteration runs every variant once, so that the machine's other
	// load falls on all of them alike; each reports its median.
	samples := make([][]time.Duration, len(variants))
	for b.Loop() {
		for i, v := range variants {
			samples[i] = append(samples[i], run(v.argv))
		}
	}
	for i, v := range variants {
		slices.Sort(samples[i])
		b.ReportMetric(float64(samples[i][len(samples[i])/2].Nanoseconds()), "ns-median/"+v.name)
	}
	b.ReportMetric(0, "ns/op")
}
