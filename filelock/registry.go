package filelock

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
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

// Field offsets. Header: in the first page.
const (
	hdrMagic    = 0  // 8 bytes, registryMagic
	hdrVersion  = 8  // uint32, formatVersion
	hdrPageSize = 12 // uint32, pageSize
	hdrCapacity = 16 // uint32, lock IDs
	hdrPages    = 20 // uint32, bitmap pages
	hdrFlags    = 24 // uint32, none defined
	hdrCRC      = 28 // uint32, CRC-32C of bytes 0-27
)

// Bitmap page header: the first pageHdrLen bytes of every page.
const (
	pgCRC      = 0  // uint32, CRC-32C of bytes 4-4095
	pgIndex    = 4  // uint32, the page's own index
	pgSeq      = 8  // uint64, sequence number of its last update
	pgSetCount = 16 // uint32, bits set
	pgReserved = 20 // zero up to pageHdrLen
)

// Journal record header, at journalOff, before the page image.
const (
	jrMagic    = 0  // 4 bytes, journalMagic
	jrIndex    = 4  // uint32, the page the image replaces
	jrSeq      = 8  // uint64, the image's sequence number
	jrCRC      = 16 // uint32, CRC-32C of bytes 0-15 and the image
	jrReserved = 20 // zero up to journalLen
)

var (
	registryMagic = [8]byte{'L', 'O', 'C', 'K', 'D', 'I', 'R', 0}
	journalMagic  = [4]byte{'J', 'R', 'N', 'L'}
)

// MaxLocks is the largest capacity a lock directory may have. It keeps the
// registry at about 2 MiB and an allocation's page search short.
const MaxLocks = 1 << 24

// DefaultNumLocks is the capacity the CLI gives a new directory: 2,048, the
// default of Podman's num_locks.
const DefaultNumLocks = 2048

// pagesFor returns how many bitmap pages a registry of the given capacity
// has.
func pagesFor(capacity uint32) uint32 {
	return uint32((uint64(capacity) + bitsPerPage - 1) / bitsPerPage)
}

func registrySize(capacity uint32) int64 {
	return pagesOff + int64(pagesFor(capacity))*pageSize
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
	n := pagesFor(capacity)
	b := make([]byte, registrySize(capacity))
	h := b[:headerLen]
	copy(h[hdrMagic:hdrVersion], registryMagic[:])
	le.PutUint32(h[hdrVersion:], formatVersion)
	le.PutUint32(h[hdrPageSize:], pageSize)
	le.PutUint32(h[hdrCapacity:], capacity)
	le.PutUint32(h[hdrPages:], n)
	// h[hdrFlags:] holds flags, none defined yet.
	le.PutUint32(h[hdrCRC:], crc32c(h[:hdrCRC]))
	for _, id := range allocated {
		p := b[pageOffset(id/bitsPerPage):]
		setBit(p, id%bitsPerPage)
	}
	for i := uint32(0); i < n; i++ {
		p := b[pageOffset(i) : pageOffset(i)+pageSize]
		le.PutUint32(p[pgIndex:], i)
		le.PutUint32(p[pgSetCount:], popcount(p))
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

func sealPage(p []byte) { le.PutUint32(p[pgCRC:], crc32c(p[pgIndex:pageSize])) }

// pageSeq returns a page image's sequence number.
func pageSeq(p []byte) uint64 { return le.Uint64(p[pgSeq:]) }

// setCount returns the count of set bits that a page image records.
func setCount(p []byte) uint32 { return le.Uint32(p[pgSetCount:]) }

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
	capacity, err := parseHeader(data[:headerLen])
	if err != nil {
		return nil, err
	}
	v := &view{data: data, capacity: capacity, pages: pagesFor(capacity)}
	if want := registrySize(v.capacity); int64(len(data)) != want {
		return nil, corruptf("registry is %d bytes, want %d for capacity %d", len(data), want, v.capacity)
	}
	v.readJournal()
	return v, nil
}

// parseHeader checks a registry's header fields, h, and returns the
// capacity they record. The header is written once, when the file is made,
// and a registry is only ever replaced whole, so a header read without the
// master lock is as good as one read under it (QuickOpenLockFile).
func parseHeader(h []byte) (capacity uint32, err error) {
	if !bytes.Equal(h[hdrMagic:hdrVersion], registryMagic[:]) {
		return 0, corruptf("bad magic %q", h[hdrMagic:hdrVersion])
	}
	if got, want := le.Uint32(h[hdrCRC:]), crc32c(h[:hdrCRC]); got != want {
		return 0, corruptf("header checksum %#08x, want %#08x", got, want)
	}
	if v := le.Uint32(h[hdrVersion:]); v != formatVersion {
		return 0, corruptf("format version %d, this build reads version %d", v, formatVersion)
	}
	if ps := le.Uint32(h[hdrPageSize:]); ps != pageSize {
		return 0, corruptf("page size %d, want %d", ps, pageSize)
	}
	if f := le.Uint32(h[hdrFlags:]); f != 0 {
		return 0, corruptf("unknown flags %#x", f)
	}
	capacity = le.Uint32(h[hdrCapacity:])
	if err := checkCapacity(capacity); err != nil {
		return 0, corruptf("%v", err)
	}
	if pages := le.Uint32(h[hdrPages:]); pages != pagesFor(capacity) {
		return 0, corruptf("%d bitmap pages for capacity %d, want %d", pages, capacity, pagesFor(capacity))
	}
	return capacity, nil
}

// readJournal finds a valid journal record and decides whether it is
// pending. A record whose checksum fails is a write that was torn by a
// crash; the page it meant to change was not touched, so it is ignored.
func (v *view) readJournal() {
	j := v.data[journalOff : journalOff+journalLen+pageSize]
	if !bytes.Equal(j[jrMagic:jrIndex], journalMagic[:]) {
		return
	}
	crc := crc32cUpdate(crc32c(j[:jrCRC]), j[journalLen:])
	if le.Uint32(j[jrCRC:]) != crc {
		return
	}
	idx, seq := le.Uint32(j[jrIndex:]), le.Uint64(j[jrSeq:])
	img := j[journalLen:]
	if idx >= v.pages || pageSeq(img) != seq || le.Uint32(img[pgIndex:]) != idx {
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
	return le.Uint32(p[pgCRC:]) == crc32c(p[pgIndex:pageSize])
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

// current returns the current image of bitmap page i, unchecked: the
// journal's image if a record is pending for i, else the page itself. It is
// the one place that makes that choice.
func (v *view) current(i uint32) (p []byte, journaled bool) {
	if v.journal != nil && v.jpage == i {
		return v.journal, true
	}
	return v.rawPage(i), false
}

// page returns the current image of bitmap page i, checked. (A pending
// journal image was checked in full by readJournal.)
func (v *view) page(i uint32) ([]byte, error) {
	p, journaled := v.current(i)
	if journaled || v.checked == i+1 {
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
	if got, want := le.Uint32(p[pgCRC:]), crc32c(p[pgIndex:]); got != want {
		return corruptf("bitmap page %d: checksum %#08x, want %#08x", i, got, want)
	}
	if idx := le.Uint32(p[pgIndex:]); idx != i {
		return corruptf("bitmap page %d: labelled as page %d", i, idx)
	}
	if !allZero(p[pgReserved:pageHdrLen]) {
		return corruptf("bitmap page %d: reserved bytes are not zero", i)
	}
	if c, n := setCount(p), popcount(p); c != n {
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

// allocatedCount returns how many IDs are allocated.
func (v *view) allocatedCount() (uint32, error) {
	var n uint32
	for i := uint32(0); i < v.pages; i++ {
		p, err := v.page(i)
		if err != nil {
			return 0, err
		}
		n += setCount(p)
	}
	return n, nil
}

// lowestFree returns the lowest unallocated ID, or ok false if there is
// none. It reads the count of each full page it skips without checking the
// page, so that allocation stays flat in the number of pages; the page it
// picks is checked in full. A corrupt count can therefore make it skip a
// page with room (and report the directory full), never pick an allocated
// ID: docs/format.md, "Checks".
func (v *view) lowestFree() (id uint32, ok bool, err error) {
	for i := uint32(0); i < v.pages; i++ {
		if cur, _ := v.current(i); setCount(cur) >= v.pageBits(i) {
			continue
		}
		p, err := v.page(i)
		if err != nil {
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
		return 0, false, corruptf("bitmap page %d: count %d but no free bit", i, setCount(p))
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
		if setCount(p) == 0 {
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

// updatePage writes into p, a page-sized buffer, the current page holding
// id with id's bit set (alloc true) or cleared, numbered seq and sealed, and
// returns it.
func (v *view) updatePage(p []byte, id uint32, alloc bool, seq uint64) ([]byte, error) {
	i := id / bitsPerPage
	cur, err := v.page(i)
	if err != nil {
		return nil, err
	}
	copy(p, cur)
	bit := id % bitsPerPage
	c := setCount(p)
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
	le.PutUint32(p[pgSetCount:], c)
	le.PutUint64(p[pgSeq:], seq)
	sealPage(p)
	return p, nil
}

var (
	errAlreadySet   = errors.New("bit already set")
	errAlreadyClear = errors.New("bit already clear")
)

// fillJournalRecord writes into r, a record-sized buffer, the journal bytes
// that commit page image p as bitmap page i, and returns r.
func fillJournalRecord(r []byte, i uint32, p []byte) []byte {
	clear(r[jrReserved:journalLen])
	copy(r[jrMagic:jrIndex], journalMagic[:])
	le.PutUint32(r[jrIndex:], i)
	le.PutUint64(r[jrSeq:], pageSeq(p))
	copy(r[journalLen:], p)
	le.PutUint32(r[jrCRC:], crc32cUpdate(crc32c(r[:jrCRC]), r[journalLen:]))
	return r
}
