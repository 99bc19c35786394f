// Command lockdir is lockdir (github.com/lockdir/lockdir/cmd/lockdir) with
// etcd support: given --etcd host:port,... or $LOCKDIR_ETCD, its init,
// alloc, free, free-all, status and lock work on a lock space in that etcd
// cluster (package github.com/lockdir/lockdir/etcdlock), so that processes
// on different machines exclude each other. Without them it is the plain
// lockdir, on a lock directory.
//
// It is a separate build because etcd's client brings gRPC, which the plain
// lockdir does without: make bin/lockdir-etcd, or
//
//	cd etcdlock && go install ./cmd/lockdir
//
// from a checkout of lockdir: etcdlock/go.mod replaces the root module
// with ../, so 'go install ...@latest' refuses it.
//
// See docs/cli.md, "On etcd".
//
// main.go runs internal/cli with the Cluster that cluster.go implements
// on etcdlock.
package main

import (
	"os"
	"runtime"

	"github.com/lockdir/lockdir/internal/cli"
)

func main() {
	// One P, as package internal/oneproc sets for the plain build, where
	// it is done in a package init to save page faults (see there). Not
	// imported here: this package's tests run an etcd server, which would
	// run on one P too.
	runtime.GOMAXPROCS(1)
	os.Exit(cli.RunCluster(os.Args[1:], etcdCluster{}))
}
