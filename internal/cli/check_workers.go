package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"time"
)

// workers are the processes of one check, as the parent drives them:
// each is started, says "ready" on its stdout once it has opened the lock
// and the counter file, and reads the time to stop at from its stdin, so
// that all of them contend for the whole run however slowly they start.
type workers struct {
	cmds    []*exec.Cmd
	starts  []io.WriteCloser // each worker's stdin
	readies []*bufio.Reader  // each worker's stdout
}

// workerArgs is the command line of worker i of a check of lock id.
type workerArgs struct {
	exe, dir, group, counter string
	id                       uint32
}

func (a workerArgs) cmd(i int) *exec.Cmd {
	// Keep argv[0]: it selects lockdir in test binaries.
	args := []string{os.Args[0], "check-worker", "--dir", a.dir}
	if a.group != "" { // an empty --group is a usage error
		args = append(args, "--group", a.group)
	}
	args = append(args, "--id", strconv.FormatUint(uint64(a.id), 10),
		"--counter", a.counter, "--slot", strconv.Itoa(i))
	return &exec.Cmd{Path: a.exe, Args: args, Stderr: stderr}
}

// startWorkers starts procs workers. If one fails to start, those already
// started are killed.
func startWorkers(a workerArgs, procs int) (*workers, error) {
	ws := &workers{}
	for i := range procs {
		if err := ws.start(a.cmd(i)); err != nil {
			ws.kill()
			return nil, fmt.Errorf("check: starting worker: %w", err)
		}
	}
	return ws, nil
}

func (ws *workers) start(w *exec.Cmd) error {
	in, err1 := w.StdinPipe()
	out, err2 := w.StdoutPipe()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	if err := w.Start(); err != nil {
		return err
	}
	ws.cmds = append(ws.cmds, w)
	ws.starts = append(ws.starts, in)
	ws.readies = append(ws.readies, bufio.NewReader(out))
	return nil
}

// kill kills every worker and waits for them to exit.
func (ws *workers) kill() {
	for _, c := range ws.cmds {
		c.Process.Kill()
	}
	for _, c := range ws.cmds {
		c.Wait()
	}
}

// awaitReady waits until every worker is ready, or for a signal. On
// either failure every worker is killed.
func (ws *workers) awaitReady(sigs <-chan os.Signal) error {
	ready := make(chan error, 1)
	go func() {
		for _, r := range ws.readies {
			if line, err := r.ReadString('\n'); line != "ready\n" {
				ready <- fmt.Errorf("check: a worker failed to start (%q, %v)", line, err)
				return
			}
		}
		ready <- nil
	}()
	select {
	case err := <-ready:
		if err != nil {
			ws.kill()
		}
		return err
	case s := <-sigs:
		ws.kill()
		return stoppedBy(s)
	}
}

// release tells every worker to contend until the time until.
func (ws *workers) release(until time.Time) {
	for _, in := range ws.starts {
		fmt.Fprintf(in, "%d\n", until.UnixNano())
		in.Close()
	}
}

// wait waits for every worker to exit, showing p meanwhile, and returns
// the first worker's failure. A signal kills every worker and stops the
// check.
func (ws *workers) wait(sigs <-chan os.Signal, p *progress) error {
	exited := make(chan error, len(ws.cmds))
	for _, w := range ws.cmds {
		go func() { exited <- w.Wait() }()
	}
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var workerErr error
	for running := len(ws.cmds); running > 0; {
		select {
		case err := <-exited:
			running--
			if err != nil && workerErr == nil {
				workerErr = err
			}
		case s := <-sigs:
			for _, c := range ws.cmds {
				c.Process.Kill()
			}
			for ; running > 0; running-- {
				<-exited
			}
			p.clear()
			return stoppedBy(s)
		case <-tick.C:
			p.show()
		}
	}
	p.clear()
	if workerErr != nil {
		return fmt.Errorf("check: a worker failed: %w; the result would mean nothing", workerErr)
	}
	return nil
}

// stoppedBy reports that signal s stopped the check, and returns the
// status for it.
func stoppedBy(s os.Signal) error {
	fmt.Fprintf(stderr, "lockdir: check: %v; stopped\n", s)
	return signalStatus(s)
}
