package filelock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/bits"

	"github.com/lockdir/lockdir/lock"
)

// The registry records which lock IDs are allocated. docs/format.md is its
// specification; this file is the only code that knows the layout. All
// integers are little-endian whatever the CPU, and every structure carries a
// CRC-32C, so the file means the same on every architecture and word size.
//
//	offset   size              contents
//	0        4096              header: magic, version, page size, capacity, page count, CRC
//	4096     8192              journal: the last page update, redone if it was interrupted
//	12288    4096 × pages      bitmap pages: CRC, index, sequence, count, 32,512 bits
//
// The header never changes once written. An allocation or free rewrites one
// bitmap page in place, crash-atomically: the new page image is first written
// whole to the journal, under a CRC, and only then over the page. A reader
// that finds a valid journal record newer than its page uses the record, so a
// process killed at any instant leaves either the old page (journal torn or
// not yet written) or the new one (journal complete).

const (
	pageSize      = 4096
	formatVersion = 1

	headerLen   = 32 // used bytes of the header page; the rest is zero
	journalOff  = pageSize
	journalLen  = 32 // journal record header before the page image
	pagesOff    = 3 * pageSize
	pageHdrLen  = 32
	bitsPerPage = (pageSize - pageHdrLen) * 8 // 32,512
	wordsInPage = (pageSize - pageHdrLen) / 8 // 508
)

var (
	registryMagic = [8]byte{'L', 'O', 'C', 'K', 'D', 'I', 'R', 0}
	journalMagic  = [4]byte{'J', 'R', 'N', 'L'}
	castagnoli    = crc32.MakeTable(crc32.Castagnoli)
)

// MaxLocks is the largest capacity a lock directory may have. It keeps the
// registry at about 2 MiB and an allocation's page search short.
const MaxLocks = 1 << 24

// DefaultNumLocks is the capacity the CLI gives a new directory: 2,048, the
// default of Podman's num_locks.
const DefaultNumLocks = 2048

func pageCount(capacity uint32) uint32 {
	return uint32((uint64(capacity) + bitsPerPage - 1) / bitsPerPage)
}

func registrySize(capacity uint32) int64 {
	return pagesOff + int64(pageCount(capacity))*pageSize
}

func pageOffset(i uint32) int64 { return pagesOff + int64(i)*pageSize }

func checkCapacity(n uint32) error {
	if n == 0 || n > MaxLocks {
		return fmt.Errorf("capacity %d out of range: want 1 to %d locks", n, MaxLocks)
	}
	return nil
}

// corruptf returns an error that matches lock.ErrCorrupt and says why.
func corruptf(format string, args ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, args...), lock.ErrCorrupt)
}

// newRegistry returns the bytes of a whole registry file of the given
// capacity in which exactly the IDs in allocated are set.
func newRegistry(capacity uint32, allocated []uint32) []byte {
	n := pageCount(capacity)
	b := make([]byte, registrySize(capacity))
	h := b[:headerLen]
	copy(h[0:8], registryMagic[:])
	le.PutUint32(h[8:], formatVersion)
	le.PutUint32(h[12:], pageSize)
	le.PutUint32(h[16:], capacity)
	le.PutUint32(h[20:], n)
	// h[24:28] holds flags, none defined yet.
	le.PutUint32(h[28:], crc32.Checksum(h[:28], castagnoli))
	for _, id := range allocated {
		p := b[pageOffset(id/bitsPerPage):]
		setBit(p, id%bitsPerPage)
	}
	for i := uint32(0); i < n; i++ {
		p := b[pageOffset(i) : pageOffset(i)+pageSize]
		le.PutUint32(p[4:], i)
		le.PutUint32(p[16:], popcount(p))
		sealPage(p)
	}
	return b
}

var le = binary.LittleEndian

func setBit(page []byte, bit uint32)   { page[pageHdrLen+bit/8] |= 1 << (bit % 8) }
func clearBit(page []byte, bit uint32) { page[pageHdrLen+bit/8] &^= 1 << (bit % 8) }
func testBit(page []byte, bit uint32) bool {
	return page[pageHdrLen+bit/8]&(1<<(bit%8)) != 0
}

func popcount(page []byte) uint32 {
	var c int
	for off := pageHdrLen; off < pageSize; off += 8 {
		c += bits.OnesCount64(le.Uint64(page[off:]))
	}
	return uint32(c)
}

func sealPage(p []byte) { le.PutUint32(p[0:], crc32.Checksum(p[4:pageSize], castagnoli)) }

func pageSeq(p []byte) uint64     { return le.Uint64(p[8:]) }
func pageCount32(p []byte) uint32 { return le.Uint32(p[16:]) }

// view is a validated window on the bytes of a registry, normally a shared
// mapping of the file. It is only meaningful while the master lock is held.
type view struct {
	data     []byte
	capacity uint32
	pages    uint32
	// journal is the journal's page image when the journal holds a valid
	// record that its page does not yet reflect; jpage is that page's index.
	journal []byte
	jpage   uint32
	jseq    uint64 // sequence of the newest valid journal record, pending or not

	// checked is 1 + the index of the last page that passed checkPage,
	// so that an operation checks the page it works on only once.
	checked uint32
}

// parseRegistry checks the header and the journal of data and returns a view
// on it. Bitmap pages are checked as they are read, or all at once by verify.
func parseRegistry(data []byte) (*view, error) {
	if len(data) < pagesOff {
		return nil, corruptf("registry is %d bytes, shorter than its %d-byte header", len(data), pagesOff)
	}
	h := data[:pageSize]
	if !bytes.Equal(h[0:8], registryMagic[:]) {
		return nil, corruptf("bad magic %q", h[0:8])
	}
	if got, want := le.Uint32(h[28:]), crc32.Checksum(h[:28], castagnoli); got != want {
		return nil, corruptf("header checksum %#08x, want %#08x", got, want)
	}
	if v := le.Uint32(h[8:]); v != formatVersion {
		return nil, corruptf("format version %d, this build reads version %d", v, formatVersion)
	}
	if ps := le.Uint32(h[12:]); ps != pageSize {
		return nil, corruptf("page size %d, want %d", ps, pageSize)
	}
	if f := le.Uint32(h[24:]); f != 0 {
		return nil, corruptf("unknown flags %#x", f)
	}
	v := &view{data: data, capacity: le.Uint32(h[16:]), pages: le.Uint32(h[20:])}
	if err := checkCapacity(v.capacity); err != nil {
		return nil, corruptf("%v", err)
	}
	if v.pages != pageCount(v.capacity) {
		return nil, corruptf("%d bitmap pages for capacity %d, want %d", v.pages, v.capacity, pageCount(v.capacity))
	}
	if want := registrySize(v.capacity); int64(len(data)) != want {
		return nil, corruptf("registry is %d bytes, want %d for capacity %d", len(data), want, v.capacity)
	}
	v.readJournal()
	return v, nil
}

// readJournal finds a valid journal record and decides whether it is
// pending. A record whose checksum fails is a write that was torn by a
// crash; the page it meant to change was not touched, so it is ignored.
func (v *view) readJournal() {
	j := v.data[journalOff : journalOff+journalLen+pageSize]
	if !bytes.Equal(j[0:4], journalMagic[:]) {
		return
	}
	crc := crc32.Update(crc32.Checksum(j[0:16], castagnoli), castagnoli, j[journalLen:])
	if le.Uint32(j[16:]) != crc {
		return
	}
	idx, seq := le.Uint32(j[4:]), le.Uint64(j[8:])
	img := j[journalLen:]
	if idx >= v.pages || pageSeq(img) != seq || le.Uint32(img[4:]) != idx {
		return
	}
	v.jseq = seq
	// The common case, checked cheaply on every operation: the page was
	// written after the record, whole. Only a pending record's image is
	// checked in full, as the page it stands for.
	p := v.rawPage(idx)
	if pageSeq(p) >= seq && pageCRCValid(p) {
		return
	}
	if checkPage(img, idx, v.capacity) == nil {
		v.journal, v.jpage = img, idx
	}
}

func pageCRCValid(p []byte) bool {
	return le.Uint32(p[0:]) == crc32.Checksum(p[4:pageSize], castagnoli)
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if le.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func (v *view) rawPage(i uint32) []byte {
	off := pageOffset(i)
	return v.data[off : off+pageSize]
}

// page returns the current contents of bitmap page i: the journal's image
// if it is pending for i, else the page itself, checked.
func (v *view) page(i uint32) ([]byte, error) {
	if v.journal != nil && v.jpage == i {
		return v.journal, nil
	}
	p := v.rawPage(i)
	if v.checked == i+1 {
		return p, nil
	}
	if err := checkPage(p, i, v.capacity); err != nil {
		return nil, err
	}
	v.checked = i + 1
	return p, nil
}

// checkPage verifies a bitmap page image: its checksum, its index, its
// count, and that no bit past the capacity is set.
func checkPage(p []byte, i uint32, capacity uint32) error {
	if got, want := le.Uint32(p[0:]), crc32.Checksum(p[4:], castagnoli); got != want {
		return corruptf("bitmap page %d: checksum %#08x, want %#08x", i, got, want)
	}
	if idx := le.Uint32(p[4:]); idx != i {
		return corruptf("bitmap page %d: labelled as page %d", i, idx)
	}
	if !allZero(p[20:pageHdrLen]) {
		return corruptf("bitmap page %d: reserved bytes are not zero", i)
	}
	if c, n := pageCount32(p), popcount(p); c != n {
		return corruptf("bitmap page %d: count %d, but %d bits are set", i, c, n)
	}
	first := i * bitsPerPage
	if limit := capacity - first; limit < bitsPerPage {
		if b := firstSetFrom(p, limit); b < bitsPerPage {
			return corruptf("bitmap page %d: lock %d is set beyond capacity %d", i, first+b, capacity)
		}
	}
	return nil
}

// firstSetFrom returns the lowest set bit of page p's bitmap at or above
// from, or bitsPerPage if there is none. It reads a word at a time: checkPage
// runs it on the last page of every registry read, where a bit-at-a-time
// loop over the up to 32,511 bits past the capacity used to dominate the
// cost of an allocation.
func firstSetFrom(p []byte, from uint32) uint32 {
	w := from / 64
	if x := le.Uint64(p[pageHdrLen+8*w:]) >> (from % 64); x != 0 {
		return from + uint32(bits.TrailingZeros64(x))
	}
	for w++; w < wordsInPage; w++ {
		if x := le.Uint64(p[pageHdrLen+8*w:]); x != 0 {
			return w*64 + uint32(bits.TrailingZeros64(x))
		}
	}
	return bitsPerPage
}

// pageBits returns how many IDs page i covers.
func (v *view) pageBits(i uint32) uint32 {
	return min(bitsPerPage, v.capacity-i*bitsPerPage)
}

// verify checks every bitmap page.
func (v *view) verify() error {
	if !allZero(v.data[headerLen:pageSize]) {
		return corruptf("header padding is not zero")
	}
	for i := uint32(0); i < v.pages; i++ {
		if _, err := v.page(i); err != nil {
			return err
		}
	}
	return nil
}

// maxSeq returns the highest sequence number in the journal or any page, so
// that the next update can be numbered above it.
func (v *view) maxSeq() uint64 {
	s := v.jseq
	for i := uint32(0); i < v.pages; i++ {
		s = max(s, pageSeq(v.rawPage(i)))
	}
	return s
}

// isSet reports whether id is allocated.
func (v *view) isSet(id uint32) (bool, error) {
	p, err := v.page(id / bitsPerPage)
	if err != nil {
		return false, err
	}
	return testBit(p, id%bitsPerPage), nil
}

// allocatedCount returns how many IDs are allocated.
func (v *view) allocatedCount() (uint32, error) {
	var n uint32
	for i := uint32(0); i < v.pages; i++ {
		p, err := v.page(i)
		if err != nil {
			return 0, err
		}
		n += pageCount32(p)
	}
	return n, nil
}

// lowestFree returns the lowest unallocated ID, or ok false if there is
// none. It reads the count of each full page it skips without checking the
// page; the page it picks is checked in full.
func (v *view) lowestFree() (id uint32, ok bool, err error) {
	for i := uint32(0); i < v.pages; i++ {
		var p []byte
		if v.journal != nil && v.jpage == i {
			p = v.journal
		} else {
			p = v.rawPage(i)
		}
		if pageCount32(p) >= v.pageBits(i) {
			continue
		}
		if p, err = v.page(i); err != nil {
			return 0, false, err
		}
		for w := 0; w < wordsInPage; w++ {
			x := le.Uint64(p[pageHdrLen+8*w:])
			if x == ^uint64(0) {
				continue
			}
			bit := uint32(w*64 + bits.TrailingZeros64(^x))
			if bit >= v.pageBits(i) {
				break
			}
			return i*bitsPerPage + bit, true, nil
		}
		return 0, false, corruptf("bitmap page %d: count %d but no free bit", i, pageCount32(p))
	}
	return 0, false, nil
}

// allocatedIDs returns every allocated ID in ascending order.
func (v *view) allocatedIDs() ([]uint32, error) {
	var ids []uint32
	for i := uint32(0); i < v.pages; i++ {
		p, err := v.page(i)
		if err != nil {
			return nil, err
		}
		if pageCount32(p) == 0 {
			continue
		}
		for w := 0; w < wordsInPage; w++ {
			x := le.Uint64(p[pageHdrLen+8*w:])
			for x != 0 {
				b := bits.TrailingZeros64(x)
				ids = append(ids, i*bitsPerPage+uint32(w*64+b))
				x &= x - 1
			}
		}
	}
	return ids, nil
}

// updatedPage returns a copy of the current page holding id with id's bit
// set (alloc true) or cleared, numbered seq and sealed.
func (v *view) updatedPage(id uint32, alloc bool, seq uint64) ([]byte, error) {
	return v.updatePage(make([]byte, pageSize), id, alloc, seq)
}

// updatePage is updatedPage writing into p, a page-sized buffer.
func (v *view) updatePage(p []byte, id uint32, alloc bool, seq uint64) ([]byte, error) {
	i := id / bitsPerPage
	cur, err := v.page(i)
	if err != nil {
		return nil, err
	}
	copy(p, cur)
	bit := id % bitsPerPage
	c := pageCount32(p)
	switch {
	case alloc && testBit(p, bit):
		return nil, errAlreadySet
	case !alloc && !testBit(p, bit):
		return nil, errAlreadyClear
	case alloc:
		setBit(p, bit)
		c++
	default:
		clearBit(p, bit)
		c--
	}
	le.PutUint32(p[16:], c)
	le.PutUint64(p[8:], seq)
	sealPage(p)
	return p, nil
}

var (
	errAlreadySet   = errors.New("bit already set")
	errAlreadyClear = errors.New("bit already clear")
)

// journalRecord returns the journal bytes that commit page image p as
// bitmap page i.
func journalRecord(i uint32, p []byte) []byte {
	return fillJournalRecord(make([]byte, journalLen+pageSize), i, p)
}

// fillJournalRecord is journalRecord writing into r, a record-sized buffer.
func fillJournalRecord(r []byte, i uint32, p []byte) []byte {
	clear(r[20:journalLen])
	copy(r[0:4], journalMagic[:])
	le.PutUint32(r[4:], i)
	le.PutUint64(r[8:], pageSeq(p))
	copy(r[journalLen:], p)
	le.PutUint32(r[16:], crc32.Update(crc32.Checksum(r[0:16], castagnoli), castagnoli, r[journalLen:]))
	return r
}
