package etcdlock

import (
	"fmt"
	"strconv"
	"strings"
)

// Key layout under the prefix P, which ends in a slash (docs/etcd.md):
//
//	P/meta                   the lock space's header: format and capacity
//	P/free/<end>             a free range [start, end) of IDs; value: start
//	P/alloc/<id>             an allocated ID; value: empty
//	P/lock/<id>/<lease>      a holder or waiter of lock id; value: host pid
//	P/void/<lease>/<n>       attempt n of lease's session gave up on its put
//
// Numbers are 10-digit zero-padded decimals, so that key order is numeric
// order. Free ranges are keyed by their end: the first free key is the
// range holding the lowest free ID, and the range holding a given ID is the
// first whose end is above it, so both are one limited, ascending range
// read, whatever the number of ranges.
const (
	metaKey     = "meta"
	freeDir     = "free/"
	allocDir    = "alloc/"
	lockDir     = "lock/"
	voidDir     = "void/"
	formatName  = "lockdir-etcd"
	formatMajor = 1
	idDigits    = 10
)

// keys builds the keys of one lock space.
type keys struct{ p string }

func (k keys) meta() string           { return k.p + metaKey }
func (k keys) free(end uint64) string { return k.p + freeDir + num(end) }
func (k keys) freeDir() string        { return k.p + freeDir }
func (k keys) alloc(id uint32) string { return k.p + allocDir + num(uint64(id)) }
func (k keys) allocDir() string       { return k.p + allocDir }
func (k keys) lock(id uint32) string  { return k.p + lockDir + num(uint64(id)) + "/" }
func (k keys) lockDir() string        { return k.p + lockDir }
func (k keys) holder(id uint32, lease int64) string {
	return k.lock(id) + strconv.FormatInt(lease, 16)
}

// void is the key that says that attempt n of the session with this
// lease gave up on its holder key's put (mutex.go, withdrawUnknown).
func (k keys) void(lease int64, n uint64) string {
	return k.p + voidDir + strconv.FormatInt(lease, 16) + "/" + strconv.FormatUint(n, 10)
}

func num(n uint64) string { return fmt.Sprintf("%0*d", idDigits, n) }

// parseNum parses a 10-digit number as num formats it.
func parseNum(s string) (uint64, bool) {
	if len(s) != idDigits {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n <= 1<<32
}

// parseID returns the ID in a key of dir (alloc/ or lock/), which may be
// followed by a slash and more.
func (k keys) parseID(key, dir string) (uint32, bool) {
	rest, ok := strings.CutPrefix(key, k.p+dir)
	if !ok {
		return 0, false
	}
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	n, ok := parseNum(rest)
	return uint32(n), ok && n < 1<<32
}

// prefixEnd returns the end of the key range of keys starting with p, as
// clientv3.GetPrefixRangeEnd does.
func prefixEnd(p string) string {
	b := []byte(p)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] < 0xff {
			b[i]++
			return string(b[:i+1])
		}
	}
	return "\x00"
}

// gaps returns the key ranges [from, to) under the prefix that none of the
// lock space's keys fall in. A key there is not lockdir's.
func (k keys) gaps() [][2]string {
	// The lock space's ranges, in key order.
	own := [][2]string{
		{k.p + allocDir, prefixEnd(k.p + allocDir)},
		{k.p + freeDir, prefixEnd(k.p + freeDir)},
		{k.p + lockDir, prefixEnd(k.p + lockDir)},
		{k.meta(), k.meta() + "\x00"},
		{k.p + voidDir, prefixEnd(k.p + voidDir)},
	}
	var g [][2]string
	from := k.p
	for _, r := range own {
		g = append(g, [2]string{from, r[0]})
		from = r[1]
	}
	return append(g, [2]string{from, prefixEnd(k.p)})
}

// ancestors returns the prefixes of lock spaces that would contain this one:
// every proper prefix of k.p that ends in a slash.
func (k keys) ancestors() []string {
	var a []string
	for i := 0; i < len(k.p)-1; i++ {
		if k.p[i] == '/' {
			a = append(a, k.p[:i+1])
		}
	}
	return a
}
