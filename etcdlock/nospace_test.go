package etcdlock_test

import (
	"context"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestNoSpaceKeepsHeldLocks (review 13): under etcd's NOSPACE alarm
// (database space exceeded), etcd refuses every put, and so every
// transaction that puts, but still applies deletes and keepalives: held
// locks stay held. acquireIn's put is refused, a definite answer; before
// 02a5687 the attempt deleted its holder key, which etcd applies, and kept
// the session. withdrawUnknown now also puts the void key in the same
// transaction, which etcd refuses too, so the attempt abandons the
// session: one LockContext of another ID, which fails anyway, revokes the
// lease and loses every lock the Manager holds.
func TestNoSpaceKeepsHeldLocks(t *testing.T) {
	m := newManager(t, 4)
	held := locker(t, m, 1)
	held.Lock()
	defer held.Unlock()

	cli := newClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := cli.Status(ctx, server.Endpoints()[0])
	if err != nil {
		t.Fatal(err)
	}
	id := st.Header.MemberId
	mc := pb.NewMaintenanceClient(cli.ActiveConnection())
	if _, err := mc.Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: id, Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatal(err)
	}
	disarm := func() {
		if _, err := cli.AlarmDisarm(context.Background(), &clientv3.AlarmMember{MemberID: id, Alarm: pb.AlarmType_NOSPACE}); err != nil {
			t.Error(err)
		}
	}
	defer disarm()

	lctx, lcancel := context.WithTimeout(context.Background(), time.Second)
	err = locker(t, m, 2).LockContext(lctx)
	lcancel()
	t.Logf("LockContext of lock 2 under NOSPACE: %v", err)
	if err == nil {
		t.Fatal("LockContext succeeded under NOSPACE")
	}
	disarm()
	select {
	case <-held.Lost():
		t.Fatal("lock 1, held all along, was lost: a failed Lock of lock 2 under NOSPACE abandoned the Manager's session")
	case <-time.After(2 * testTTL):
	}
}
