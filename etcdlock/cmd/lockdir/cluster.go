package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/lockdir/lockdir/etcdlock"
	"github.com/lockdir/lockdir/internal/cli"
	"github.com/lockdir/lockdir/lock"
)

// etcdCluster is the cli.Cluster of etcd clusters.
type etcdCluster struct{}

// Open connects to the cluster and opens the lock space under c.Prefix.
// c.Timeout bounds the dial and every request, so an unreachable cluster
// is an error after about that long.
func (etcdCluster) Open(c cli.ClusterConfig, numLocks uint32) (cli.Space, error) {
	tc, err := tlsConfig(c)
	if err != nil {
		return nil, err
	}
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   c.Endpoints,
		DialTimeout: c.Timeout,
		TLS:         tc,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, err
	}
	opts := []etcdlock.Option{etcdlock.WithTimeout(c.Timeout)}
	if c.TTL > 0 {
		opts = append(opts, etcdlock.WithTTL(c.TTL))
	}
	m, err := etcdlock.New(client, c.Prefix, numLocks, opts...)
	if err != nil {
		client.Close()
		return nil, err
	}
	return &space{m: m, client: client,
		where: fmt.Sprintf("etcd lock space %s at %s", m.Prefix(), strings.Join(c.Endpoints, ","))}, nil
}

// tlsConfig is the TLS configuration that --cacert, --cert and --key ask
// for, or nil for none.
func tlsConfig(c cli.ClusterConfig) (*tls.Config, error) {
	if c.CACert == "" && c.Cert == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.CACert != "" {
		pem, err := os.ReadFile(c.CACert)
		if err != nil {
			// %v, not %w: a missing TLS file is not a missing lock space.
			return nil, fmt.Errorf("--cacert: %v", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, &fs.PathError{Op: "--cacert", Path: c.CACert, Err: errors.New("no PEM certificate in it")}
		}
	}
	if c.Cert != "" {
		cert, err := tls.LoadX509KeyPair(c.Cert, c.Key)
		if err != nil {
			return nil, fmt.Errorf("--cert %s, --key %s: %v", c.Cert, c.Key, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// space is a cli.Space on an etcdlock.Manager with a client of its own.
type space struct {
	m      *etcdlock.Manager
	client *clientv3.Client
	where  string
}

func (s *space) Where() string                      { return s.where }
func (s *space) Capacity() uint32                   { return s.m.Capacity() }
func (s *space) AllocateLock() (lock.Locker, error) { return s.m.AllocateLock() }
func (s *space) Allocated() ([]uint32, error)       { return s.m.Allocated() }
func (s *space) FreeAllLocks() error                { return s.m.FreeAllLocks() }

func (s *space) AllocateAndRetrieveLock(id uint32) (lock.Locker, error) {
	return s.m.AllocateAndRetrieveLock(id)
}

func (s *space) RetrieveLock(id uint32) (lock.Locker, error) { return s.m.RetrieveLock(id) }

func (s *space) Holders() ([]cli.ClusterHolder, error) {
	hs, err := s.m.Holders()
	if err != nil {
		return nil, err
	}
	out := make([]cli.ClusterHolder, len(hs))
	for i, h := range hs {
		out[i] = cli.ClusterHolder{ID: h.ID, Host: h.Host, PID: h.PID, Waiting: h.Waiting}
	}
	return out, nil
}

// Lock takes lock id: with wait, until ctx is done; without, TryLock,
// whose panic on an etcd error becomes the error.
func (s *space) Lock(ctx context.Context, id uint32, wait bool) (h cli.Held, err error) {
	l, err := s.m.Retrieve(id)
	if err != nil {
		return nil, err
	}
	if wait {
		if err := l.LockContext(ctx); err != nil {
			return nil, err
		}
		return l, nil
	}
	defer func() {
		if r := recover(); r != nil {
			e, ok := r.(error)
			if !ok {
				panic(r)
			}
			h, err = nil, e
		}
	}()
	if !l.TryLock() {
		return nil, nil
	}
	return l, nil
}

// Close releases what the space holds, by revoking its lease, and closes
// the client.
func (s *space) Close() error {
	err := s.m.Close()
	if cerr := s.client.Close(); err == nil && !errors.Is(cerr, context.Canceled) {
		err = cerr
	}
	return err
}
