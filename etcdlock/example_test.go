package etcdlock_test

import (
	"context"
	"fmt"
	"log"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/lockdir/lockdir/etcdlock"
)

// A holder writes to storage with its fencing token, and the storage (here
// etcd itself) refuses the write if a holder with a larger token has
// written: the lock may have passed on while this holder was paused or cut
// off, whatever Lost said when it last looked.
func Example_fencing() {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{"127.0.0.1:2379"}, DialTimeout: 5 * time.Second})
	if err != nil {
		log.Fatal(err)
	}
	defer cli.Close()
	m, err := etcdlock.New(cli, "/locks/example/", 64)
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	l, err := m.Retrieve(7)
	if err != nil {
		log.Fatal(err)
	}
	l.Lock()
	defer l.Unlock()

	// Tokens are zero-padded, as etcd compares values as strings. The
	// fence key must exist (set it to twenty zeros once): a compare of a
	// missing key's value fails. The write passes if no larger token has
	// written, so one hold may write many times.
	token := fmt.Sprintf("%020d", l.Token())
	above := fmt.Sprintf("%020d", l.Token()+1)
	resp, err := cli.Txn(context.Background()).
		If(clientv3.Compare(clientv3.Value("/data/fence"), "<", above)).
		Then(clientv3.OpPut("/data/fence", token), clientv3.OpPut("/data/value", "written under lock 7")).
		Commit()
	switch {
	case err != nil:
		log.Fatal(err)
	case !resp.Succeeded:
		log.Print("refused: a later holder of lock 7 has written")
	}
	select {
	case <-l.Lost():
		log.Print("lock 7 was lost")
	default:
	}
}
