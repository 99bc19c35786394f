package filelock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/spf13/afero"
)

const (
	registryName = "registry"
	masterName   = "registry.lock"
	tmpName      = "registry.tmp"
	locksName    = "locks"
)

// registryFile is an open registry: the file, for writes through afero, and
// a read-only shared mapping of it, for reads. The master lock must be held
// around every use.
type registryFile struct {
	fs    afero.Fs
	dir   string
	path  string
	fsync bool
	perm  fs.FileMode
	gid   int

	f    afero.File
	data []byte
	id   fileInfo // dev, ino and size of the mapped file

	// Scratch pages for commit, reused to spare the garbage collector.
	oldPage, newPage [pageSize]byte
	record           [journalLen + pageSize]byte
}

type fdFile interface{ Fd() uintptr }

// open opens and maps the registry at r.path, whose identity per stat is fi.
func (r *registryFile) open(fi fileInfo) error {
	if !fi.isReg() {
		return &fs.PathError{Op: "open", Path: r.path, Err: errors.New("registry is not a regular file")}
	}
	f, err := r.fs.OpenFile(r.path, os.O_RDWR|oNOFOLLOW, 0)
	if err != nil {
		return err
	}
	ff, ok := f.(fdFile)
	if !ok {
		f.Close()
		return &fs.PathError{Op: "open", Path: r.path, Err: errors.New("registry file system has no file descriptors")}
	}
	got, err := fstat(int(ff.Fd()))
	if err != nil {
		f.Close()
		return &fs.PathError{Op: "fstat", Path: r.path, Err: err}
	}
	if got.dev != fi.dev || got.ino != fi.ino {
		// Replaced between the stat and the open; the caller retries.
		f.Close()
		return &fs.PathError{Op: "open", Path: r.path, Err: errReplaced}
	}
	if got.size < pagesOff || got.size > registrySize(MaxLocks) {
		f.Close()
		return &fs.PathError{Op: "open", Path: r.path, Err: corruptf("registry is %d bytes", got.size)}
	}
	data, err := mmapRead(int(ff.Fd()), int(got.size))
	if err != nil {
		f.Close()
		return &fs.PathError{Op: "mmap", Path: r.path, Err: err}
	}
	r.close()
	r.f, r.data, r.id = f, data, got
	return nil
}

var errReplaced = errors.New("registry replaced while opening")

func (r *registryFile) close() error {
	var err error
	if r.data != nil {
		err = munmap(r.data)
		r.data = nil
	}
	if r.f != nil {
		err = errors.Join(err, r.f.Close())
		r.f = nil
	}
	return err
}

// refresh makes sure the mapping is of the file now at r.path, reopening it
// if another process replaced it (Resize and FreeAllLocks do) and refusing
// it if it changed size in place, which no lockdir process does.
func (r *registryFile) refresh(dirfd int) error {
	// A path lookup, not an fstat of the mapped file: an fstat would not
	// notice a registry renamed away and replaced (say by an operator's
	// mv and lockdir init), and this process would go on allocating from
	// the old one.
	for range 10 {
		fi, err := lstatAt(dirfd, registryName)
		if err != nil {
			return &fs.PathError{Op: "stat", Path: r.path, Err: err}
		}
		if r.data != nil && fi.dev == r.id.dev && fi.ino == r.id.ino {
			if fi.size != r.id.size {
				return &fs.PathError{Op: "stat", Path: r.path, Err: corruptf("registry changed size from %d to %d bytes", r.id.size, fi.size)}
			}
			return nil
		}
		if fi.isLink() {
			return &fs.PathError{Op: "open", Path: r.path, Err: errors.New("registry is a symbolic link; refusing to follow it")}
		}
		if err := r.open(fi); !errors.Is(err, errReplaced) {
			return err
		}
	}
	return &fs.PathError{Op: "open", Path: r.path, Err: errReplaced}
}

// view parses the mapping.
func (r *registryFile) view() (*view, error) {
	v, err := parseRegistry(r.data)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: r.path, Err: err}
	}
	return v, nil
}

func (r *registryFile) writeAt(b []byte, off int64) error {
	if _, err := r.f.WriteAt(b, off); err != nil {
		return err
	}
	if r.fsync {
		return r.f.Sync()
	}
	return nil
}

// recover redoes a journal record that its page does not reflect yet, so
// that the journal can be reused.
func (r *registryFile) recover(v *view) error {
	if v.journal == nil {
		return nil
	}
	img := append([]byte(nil), v.journal...)
	if err := r.writeAt(img, pageOffset(v.jpage)); err != nil {
		return fmt.Errorf("redo journal on page %d: %w", v.jpage, err)
	}
	v.journal = nil
	return nil
}

// commit replaces bitmap page i, whose current image is old, with p: first
// the journal record, then the page in place. If any step fails it rolls
// back by committing old under a newer sequence number, so that an error
// means the registry still holds the old state. Only if the rollback fails
// too may the change have taken effect; the error says so. In no case is
// the registry left unreadable: the rollback never overwrites the only
// valid copy of a page.
func (r *registryFile) commit(i uint32, old, p []byte) error {
	// back is the rollback image: old, numbered above p.
	back := func() []byte {
		b := append([]byte(nil), old...)
		le.PutUint64(b[8:], pageSeq(p)+1)
		sealPage(b)
		return b
	}
	if err := r.writeAt(fillJournalRecord(r.record[:], i, p), journalOff); err != nil {
		// The page is untouched and valid. The journal may hold p, whole
		// (if only the sync failed) or torn; supersede it with the old
		// image.
		if rerr := r.writeAt(journalRecord(i, back()), journalOff); rerr != nil {
			return fmt.Errorf("update %s, and roll back failed too (%v), so the change may have been applied: %w", r.path, rerr, err)
		}
		// The journal now holds the old page; writing it in place is
		// only tidying, and the next update redoes it if this fails.
		_ = r.writeAt(back(), pageOffset(i))
		return fmt.Errorf("update %s: %w", r.path, err)
	}
	if err := r.writeAt(p, pageOffset(i)); err != nil {
		// The journal holds p, whole, which readers use while the page,
		// perhaps torn, is older. Roll back over the page itself, under
		// a newer sequence number than the journal's; if that write
		// fails or tears as well, the journal still holds a valid page
		// (the new one). Rolling back through the journal instead would
		// leave no valid copy if that write tore too.
		if rerr := r.writeAt(back(), pageOffset(i)); rerr != nil {
			return fmt.Errorf("update %s, and roll back failed too (%v), so the change may have been applied: %w", r.path, rerr, err)
		}
		return fmt.Errorf("update %s: %w", r.path, err)
	}
	return nil
}

// replace atomically replaces the whole registry with img: it writes a
// temporary file, fsyncs it, renames it over the registry and fsyncs the
// directory, then maps the new file. Until the rename the old registry
// stands untouched; after it, the new one.
func (r *registryFile) replace(dirfd int, img []byte) error {
	tmp := filepath.Join(r.dir, tmpName)
	if err := r.writeTemp(tmp, img); err != nil {
		_ = r.fs.Remove(tmp)
		return err
	}
	if err := r.fs.Rename(tmp, r.path); err != nil {
		_ = r.fs.Remove(tmp)
		return err
	}
	// The rename is done: the new registry is in place whatever follows.
	// A failed directory fsync only weakens durability across power loss.
	syncErr := r.syncDir()
	if err := r.refresh(dirfd); err != nil {
		return fmt.Errorf("registry replaced, but reopening it failed: %w", err)
	}
	if syncErr != nil {
		return fmt.Errorf("registry replaced, but not durably: %w", syncErr)
	}
	return nil
}

func (r *registryFile) writeTemp(tmp string, img []byte) error {
	// A stale temporary file is left by a process killed mid-replace. We
	// hold the master lock, so nobody else is writing it.
	if err := r.fs.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := r.fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|oNOFOLLOW, r.perm)
	if err != nil {
		return err
	}
	if _, err = f.Write(img); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = r.fs.Chmod(tmp, r.perm) // the umask may have narrowed it
	}
	if err == nil && r.gid >= 0 {
		err = r.fs.Chown(tmp, -1, r.gid)
	}
	return err
}

func (r *registryFile) syncDir() error {
	d, err := r.fs.Open(r.dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
