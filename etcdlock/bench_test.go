package etcdlock_test

import (
	"context"
	"testing"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// BenchmarkUncontended compares an uncontended Lock+Unlock of a Locker
// with the same on etcd's concurrency.Mutex, on the same server, in the
// same run. Report the ratio of Locker to Mutex.
func BenchmarkUncontended(b *testing.B) {
	b.Run("Mutex", func(b *testing.B) {
		cli := newClient(b)
		s, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		mu := concurrency.NewMutex(s, newPrefix(b))
		ctx := context.Background()
		for b.Loop() {
			if err := mu.Lock(ctx); err != nil {
				b.Fatal(err)
			}
			if err := mu.Unlock(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Locker", func(b *testing.B) {
		m := newManager(b, 4)
		l, err := m.RetrieveLock(0)
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			l.Lock()
			l.Unlock()
		}
	})
}
