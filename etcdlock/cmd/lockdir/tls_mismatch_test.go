package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// writeCert writes a certificate and its key, signed by parent (self-signed
// if parent is nil), and returns them.
func writeCert(t *testing.T, dir, name string, ca bool, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:         ca, BasicConstraintsValid: true,
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	if err := os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return c, key
}

// TestTLSMismatch (review 10c) runs lockdir against a real etcd that
// serves its clients over TLS only, with a CA that did not sign the
// server's certificate, and with no TLS at all. docs/cli.md gives exit 3
// for both ("the cluster cannot be reached", "a TLS file is unusable"), but
// a user must be told that TLS is the problem: the message must name the
// certificate or the handshake, not only "did not answer within 1s:
// context deadline exceeded", which sends them to look for a dead server
// or a firewall. The control, the right CA, must work.
func TestTLSMismatch(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := writeCert(t, dir, "ca", true, nil, nil)
	writeCert(t, dir, "server", false, ca, caKey)
	writeCert(t, dir, "otherca", true, nil, nil)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	clientAddr := l.Addr().String()
	l.Close()
	l, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	peerAddr := l.Addr().String()
	l.Close()
	cfg := embed.NewConfig()
	cfg.Name = "tls"
	cfg.Dir = filepath.Join(dir, "etcd")
	cfg.UnsafeNoFsync = true
	cu, _ := url.Parse("https://" + clientAddr)
	pu, _ := url.Parse("http://" + peerAddr)
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{*cu}, []url.URL{*cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{*pu}, []url.URL{*pu}
	cfg.InitialCluster = cfg.Name + "=" + pu.String()
	cfg.ClientTLSInfo.CertFile = filepath.Join(dir, "server.pem")
	cfg.ClientTLSInfo.KeyFile = filepath.Join(dir, "server-key.pem")
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.LogLevel = "error"
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(20 * time.Second):
		t.Fatal("etcd not ready")
	}
	bin := filepath.Join(t.TempDir(), "lockdir")
	if err := os.Symlink(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string) {
		var stderr strings.Builder
		cmd := &exec.Cmd{Path: bin, Stderr: &stderr, Env: append(os.Environ(), "LOCKDIR_ETCD="+clientAddr, "LOCKDIR_ETCD_PREFIX=/mismatch-test/"),
			Args: append([]string{"lockdir", "--dial-timeout", "1s"}, args...)}
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), stderr.String()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, stderr.String()
	}
	if code, msg := run("--cacert", filepath.Join(dir, "ca.pem"), "init", "--num-locks", "4"); code != 0 {
		t.Fatalf("control, the right CA: exit %d: %s", code, msg)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"wrong CA", []string{"--cacert", filepath.Join(dir, "otherca.pem"), "status"}},
		{"wrong CA, lock", []string{"--cacert", filepath.Join(dir, "otherca.pem"), "lock", "1", "true"}},
		{"no TLS", []string{"status"}},
	} {
		code, msg := run(tc.args...)
		t.Logf("%s: exit %d: %s", tc.name, code, msg)
		if code != 3 {
			t.Errorf("%s: exit %d, want 3", tc.name, code)
		}
		low := strings.ToLower(msg)
		if !strings.Contains(low, "certificate") && !strings.Contains(low, "tls") && !strings.Contains(low, "x509") && !strings.Contains(low, "handshake") {
			t.Errorf("%s: the message does not say that TLS is the problem: %q", tc.name, strings.TrimSpace(msg))
		}
	}
}
