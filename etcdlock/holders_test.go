package etcdlock_test

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestHolders checks that Holders names the holder of a lock and then its
// waiter, by host and PID, with the holder's fencing token.
func TestHolders(t *testing.T) {
	m1 := newManager(t, 8)
	m2, err := openOwned(addr(m1))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if hs, err := m1.Holders(); err != nil || len(hs) != 0 {
		t.Fatalf("Holders of an unused space = %v, %v; want none", hs, err)
	}
	l1, l2 := locker(t, m1, 5), locker(t, m2.Manager, 5)
	l1.Lock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waited := make(chan error, 1)
	go func() { waited <- l2.LockContext(ctx) }()
	host, _ := os.Hostname()
	deadline := time.Now().Add(10 * time.Second)
	for {
		hs, err := m1.Holders()
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) == 2 {
			for i, h := range hs {
				if h.ID != 5 || h.Host != host || h.PID != os.Getpid() || h.Waiting != (i == 1) {
					t.Errorf("holder %d: %+v; want ID 5, host %s, PID %d, waiting %v", i, h, host, os.Getpid(), i == 1)
				}
			}
			if hs[0].Token != l1.Token() || hs[1].Token <= hs[0].Token {
				t.Errorf("tokens %d, %d; want the holder's %d, then a larger one", hs[0].Token, hs[1].Token, l1.Token())
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Holders = %+v; the waiter never showed", hs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	l1.Unlock()
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	hs, err := m1.Holders()
	if err != nil || len(hs) != 1 || hs[0].Waiting || hs[0].Token != l2.Token() {
		t.Errorf("Holders after the handoff = %+v, %v; want the new holder alone, token %d", hs, err, l2.Token())
	}
	l2.Unlock()
}
