# lockdir's build. `make test` is what CI runs (through .ci/run) and what the
# README tells a new user to run.

SHELL     := /bin/bash
.SHELLFLAGS := -o pipefail -c
GO        ?= go
PKGS      := ./...
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
BENCHSTAT   := golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
FUZZTIME  ?= 30s

.PHONY: all build bin/lockdir-etcd test race bench bench-cold bench-cli lint fuzz torture torture-long clean install test-etcd etcd-demo etcd-cli-demo bench-etcd cluster-etcd soak-etcd

all: build test

build:
	$(GO) build $(PKGS)
	$(GO) build -o bin/lockdir ./cmd/lockdir

# The etcd-enabled lockdir (docs/cli.md, "On etcd"): the same commands,
# plus --etcd and $LOCKDIR_ETCD. It is built from the etcdlock module, so
# that bin/lockdir, like every filelock user, builds nothing of etcd.
bin/lockdir-etcd:
	cd etcdlock && $(GO) build -ldflags "-X github.com/lockdir/lockdir/internal/cli.buildRevision=$(REVISION)" -o ../bin/lockdir-etcd ./cmd/lockdir

# The default test run: vet, every test under the race detector, then the
# torture harness's short mode. About three minutes on 2 cores.
# GORACE: a race-enabled binary sleeps a second at exit to let reports
# print; the tests start hundreds of children, each of which would.
test:
	$(GO) vet $(PKGS)
	GORACE=atexit_sleep_ms=0 $(GO) test -race -count=1 -timeout 15m $(PKGS)
	$(MAKE) test-etcd
	$(MAKE) torture

# The etcdlock module (its own go.mod, so that filelock users build nothing
# of etcd), against an etcd embedded in the test binary: one to two minutes
# under the race detector on 2 shared cores, after a first build of etcd
# with -race that takes about three.
test-etcd:
	cd etcdlock && $(GO) vet ./... && GORACE=atexit_sleep_ms=0 $(GO) test -race -count=1 -timeout 15m ./...

# A 3-member embedded cluster, 8 client processes contending for one lock
# with a fenced counter, the leader stopped and restarted, a member
# partitioned: about 35 s (cluster-etcd), or with five times longer phases
# (soak-etcd).
cluster-etcd:
	cd etcdlock && LOCKDIR_ETCD_CLUSTER=short $(GO) test -count=1 -v -run '^TestClusterFencedCounter$$' . | grep -E 'FIGURE|^--- |^(ok|FAIL|PASS)'

soak-etcd:
	cd etcdlock && LOCKDIR_ETCD_CLUSTER=long $(GO) test -race -count=1 -v -timeout 30m -run '^TestClusterFencedCounter$$' . | grep -E 'FIGURE|^--- |^(ok|FAIL|PASS)'

# Two processes contend for one lock through an embedded etcd.
etcd-demo:
	cd etcdlock && $(GO) run ./cmd/etcd-demo

# The etcd-enabled lockdir against an embedded etcd (etcd-demo -serve): one
# lockdir holds lock 7 for a second while status names it and another
# lockdir, refused with -n, then waits its turn.
etcd-cli-demo: bin/lockdir-etcd
	cd etcdlock && $(GO) build -o ../bin/etcd-demo ./cmd/etcd-demo
	@rm -f bin/etcd.addr; bin/etcd-demo -serve bin/etcd.addr & pid=$$!; trap "kill $$pid" EXIT; \
	for i in $$(seq 300); do test -s bin/etcd.addr && break; sleep 0.1; done; \
	export LOCKDIR_ETCD=$$(cat bin/etcd.addr) LOCKDIR_ETCD_PREFIX=/lockdir-cli-demo/; echo "LOCKDIR_ETCD=$$LOCKDIR_ETCD"; \
	bin/lockdir-etcd init --num-locks 16 && \
	{ bin/lockdir-etcd lock 7 -- sh -c 'echo "A: holding lock 7 for a second"; touch bin/etcd.held; sleep 1; echo "A: done"' & a=$$!; } && \
	for i in $$(seq 300); do test -e bin/etcd.held && break; sleep 0.02; done; rm -f bin/etcd.held; \
	bin/lockdir-etcd status && \
	{ bin/lockdir-etcd lock -n 7 -- true; echo "B: lock -n 7 exits $$? while A holds it"; } && \
	bin/lockdir-etcd lock --verbose 7 -- echo "B: holding lock 7 after A" && wait $$a

bench-etcd:
	cd etcdlock && $(GO) test -run '^$$' -bench . -count 10 -timeout 60m . | tee ../bench-etcd.txt
	$(GO) run $(BENCHSTAT) bench-etcd.txt

race: test

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 10 -timeout 60m ./filelock/ | tee bench.txt
	$(GO) run $(BENCHSTAT) bench.txt
	$(MAKE) bench-cold bench-cli

# Whole-process benchmarks (internal/procbench; docs/performance.md,
# "Short-lived process" and "CLI start-up"). Every sample is a fresh
# process, and the variants alternate in one run. The .txt files end with
# medians and ratios; benchstat shows a column per variant.
BENCH_DIR   ?= /dev/shm
COLD_N      ?= 2048,10000
COLD_ROUNDS ?= 15
CLI_ROUNDS  ?= 25

bench-cold:
	$(GO) build -o bin/procbench ./internal/procbench
	bin/procbench cold -dir $(BENCH_DIR) -n $(COLD_N) -rounds $(COLD_ROUNDS) | tee bench-cold.txt
	$(GO) run $(BENCHSTAT) -col '/impl@(baseline lockdir noop)' bench-cold.txt
	grep '^# ratio' bench-cold.txt

bench-cli:
	$(GO) build -o bin/procbench ./internal/procbench
	bin/procbench cli -dir $(BENCH_DIR) -rounds $(CLI_ROUNDS) | tee bench-cli.txt
	$(GO) run $(BENCHSTAT) -col '/impl@(flock go-floor go-afero go-signals go-forkexec go-forkexec-signals lockdir)' bench-cli.txt
	grep -E '^# (ratio|size)' bench-cli.txt

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run $(STATICCHECK) $(PKGS)
	GOOS=darwin $(GO) vet $(PKGS)
	GOOS=freebsd $(GO) vet $(PKGS)
	GOOS=openbsd $(GO) vet $(PKGS)
	GOOS=netbsd $(GO) vet $(PKGS)
	GOOS=windows $(GO) vet $(PKGS)
	for arch in s390x ppc64; do GOOS=linux GOARCH=$$arch $(GO) vet $(PKGS) || exit 1; done
	cd etcdlock && $(GO) vet ./... && $(GO) run $(STATICCHECK) ./...

# Each fuzz target for FUZZTIME; the seed corpora run in `make test`.
# Minimizing each new interesting input, which is tens of kilobytes like a
# real registry, stalls the fuzzer for minutes; crashers are small to
# minimize by hand, so minimization is off.
fuzz:
	$(GO) test ./filelock -run '^$$' -fuzz '^FuzzParseRegistry$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 0
	$(GO) test ./filelock -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 0

# The torture harness (internal/torture and the filelock torture and
# hardening tests) in its short mode, about a minute, and its long mode,
# whose figures docs/reliability.md reports. Both run on tmpfs.
torture:
	TMPDIR=/dev/shm LOCKDIR_TORTURE=short $(GO) test -p 1 -count=1 -v -run 'Torture|Hardening' ./internal/torture ./filelock | grep -E 'FIGURE|^--- |^(ok|FAIL|PASS)'

torture-long:
	TMPDIR=/dev/shm LOCKDIR_TORTURE=long $(GO) test -p 1 -count=1 -v -timeout 0 -run 'Torture|Hardening' ./internal/torture ./filelock | grep -E 'FIGURE|^--- |^(ok|FAIL|PASS)'
	$(MAKE) fuzz FUZZTIME=10m

# make install PREFIX=/usr/local (DESTDIR for packaging): the binary, the
# man page and the bash completion. The revision goes in with -ldflags as
# well, since 'go build' records none in a git worktree.
PREFIX    ?= /usr/local
REVISION  := $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo +dirty)

install:
	$(GO) build -ldflags "-X github.com/lockdir/lockdir/internal/cli.buildRevision=$(REVISION)" -o bin/lockdir ./cmd/lockdir
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 0755 bin/lockdir $(DESTDIR)$(PREFIX)/bin/lockdir
	install -m 0644 docs/lockdir.1 $(DESTDIR)$(PREFIX)/share/man/man1/lockdir.1
	install -m 0644 contrib/completion/lockdir.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/lockdir

clean:
	rm -rf bin bench.txt bench-cold.txt bench-cli.txt bench-etcd.txt
