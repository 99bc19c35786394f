package filelock

// Helpers for the registry's white-box tests: allocating forms of what the
// production code does in reused buffers.

// isSet reports whether id is allocated.
func (v *view) isSet(id uint32) (bool, error) {
	p, err := v.page(id / bitsPerPage)
	if err != nil {
		return false, err
	}
	return testBit(p, id%bitsPerPage), nil
}

// updatedPage returns a copy of the current page holding id with id's bit
// set (alloc true) or cleared, numbered seq and sealed.
func (v *view) updatedPage(id uint32, alloc bool, seq uint64) ([]byte, error) {
	return v.updatePage(make([]byte, pageSize), id, alloc, seq)
}

// journalRecord returns the journal bytes that commit page image p as
// bitmap page i.
func journalRecord(i uint32, p []byte) []byte {
	return fillJournalRecord(make([]byte, journalLen+pageSize), i, p)
}
