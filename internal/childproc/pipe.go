package childproc

import (
	"errors"
	"os"
	"time"
)

// A pipeReader reads a child's output from the read end of its pipe: to
// the end, or, once stopAtEmpty has been called because the child is dead,
// only as far as the pipe holds data. What a dead child wrote is all in
// the pipe, so nothing of it is lost; what a grandchild still holding the
// pipe writes later is not waited for.
type pipeReader struct {
	f        *os.File
	draining bool // stopAtEmpty was called: read what is there, then end
}

// stopAtEmpty makes the pipeReader of f end its output once f holds no
// more data, without waiting for the writers to close it. The read
// deadline wakes a Read that waits; where f takes no deadline, the reader
// goes on to the end of the output.
func stopAtEmpty(f *os.File) {
	f.SetReadDeadline(time.Now())
}

// Read reads from the pipe, as os.File.Read does until stopAtEmpty is
// called, and then as much as the pipe holds at once, ending the output
// with io.EOF when it is empty.
func (p *pipeReader) Read(b []byte) (int, error) {
	if !p.draining {
		n, err := p.f.Read(b)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			return n, err
		}
		// The deadline is stopAtEmpty's: the child is dead. Lift it,
		// since it also refuses reads of data that is there.
		p.draining = true
		if err := p.f.SetReadDeadline(time.Time{}); err != nil {
			return 0, err
		}
	}
	return readNow(p.f, b)
}
