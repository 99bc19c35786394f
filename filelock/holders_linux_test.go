//go:build linux

package filelock

import (
	"encoding/binary"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// direntRecord encodes one struct linux_dirent64 in byte order order,
// padded to 8 bytes as the kernel does.
func direntRecord(order binary.ByteOrder, ino uint64, name string) []byte {
	reclen := (19 + len(name) + 1 + 7) &^ 7
	b := make([]byte, reclen)
	order.PutUint64(b[0:], ino)
	order.PutUint64(b[8:], uint64(reclen)) // d_off: any value
	order.PutUint16(b[16:], uint16(reclen))
	b[18] = 8 // DT_REG
	copy(b[19:], name)
	return b
}

// TestParseDirentsByteOrder decodes buffers laid out as a little- and a
// big-endian kernel writes them. Decoding with the other order, as
// Holders did on s390x and ppc64 when it hard-coded little-endian, gets
// garbage inodes and lengths.
func TestParseDirentsByteOrder(t *testing.T) {
	want := map[string]uint64{"0": 12345, "17": 1 << 40, "registry": 7}
	for _, c := range []struct {
		name  string
		order binary.ByteOrder
	}{
		{"little-endian", binary.LittleEndian},
		{"big-endian", binary.BigEndian},
		{"native", direntOrder},
	} {
		t.Run(c.name, func(t *testing.T) {
			var buf []byte
			for _, name := range slices.Sorted(maps.Keys(want)) {
				buf = append(buf, direntRecord(c.order, want[name], name)...)
			}
			got := map[string]uint64{}
			parseDirents(buf, c.order, func(ino uint64, name []byte) { got[string(name)] = ino })
			if !maps.Equal(got, want) {
				t.Errorf("decoded %v, want %v", got, want)
			}
		})
	}
}

// TestParseDirentsKernel decodes what getdents(2) returns for a real
// directory with direntOrder and checks every inode against lstat. Run
// on a big-endian machine (or under qemu-s390x), it fails if direntOrder
// is not the native order.
func TestParseDirentsKernel(t *testing.T) {
	dir := t.TempDir()
	want := map[string]uint64{}
	for _, name := range []string{"0", "1", "42", "registry.lock"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		want[name] = fi.Sys().(*syscall.Stat_t).Ino
	}
	fd, err := openAt(atFDCWD, dir, oRDONLY|oDIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFD(fd)
	got := map[string]uint64{}
	buf := make([]byte, 4096)
	for {
		n, err := getdents(fd, buf)
		if err != nil {
			t.Fatal(err)
		}
		if n <= 0 {
			break
		}
		parseDirents(buf[:n], direntOrder, func(ino uint64, name []byte) {
			if s := string(name); s != "." && s != ".." {
				got[s] = ino
			}
		})
	}
	if !maps.Equal(got, want) {
		t.Errorf("getdents decoded as %v, want %v (from lstat)", got, want)
	}
}

// TestHoldersOnceEach gives sortHolders, which Holders and Waiters return
// through, entries that /proc/locks repeated, as it can when the table
// changes between the pages the kernel writes: each is listed once, in
// order of ID, PID and mode.
func TestHoldersOnceEach(t *testing.T) {
	got := sortHolders([]Holder{
		{ID: 3, PID: 7, Exclusive: true}, {ID: 1, PID: 9}, {ID: 3, PID: 7, Exclusive: true},
		{ID: 3, PID: 7}, {ID: 1, PID: 9},
	})
	want := []Holder{{ID: 1, PID: 9}, {ID: 3, PID: 7}, {ID: 3, PID: 7, Exclusive: true}}
	if !slices.Equal(got, want) {
		t.Errorf("sortHolders = %+v, want %+v", got, want)
	}
}
