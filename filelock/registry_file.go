package filelock

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
)

const (
	registryName = "registry"
	masterName   = "registry.lock"
	tmpName      = "registry.tmp"
	locksName    = "locks"
)

// registryFile is an open registry: the file, for writes through dirFS, and
// a read-only shared mapping of it, for reads. The master lock must be held
// around every use. Every file operation is relative to the lock
// directory's descriptor (dirfd); dir and path are only for messages.
type registryFile struct {
	fs    dirFS
	dir   string // the lock directory's path, for messages
	path  string
	fsync bool
	perm  fs.FileMode
	gid   int

	f    regFile
	data []byte
	id   fileInfo // dev, ino and size of the mapped file

	// scratch is allocated on the first update, and reused after it to
	// spare the garbage collector. Not inline: a process that only opens
	// the directory ('lockdir lock') would zero its 12 KiB, and Open's
	// composite literal would grow the goroutine's stack past 8 KiB to
	// copy them (issue 12).
	scratch *regScratch
}

// regScratch holds the pages an update is built in.
type regScratch struct {
	oldPage, newPage [pageSize]byte
	record           [journalLen + pageSize]byte
}

// buffers returns the scratch pages, allocating them on first use.
func (r *registryFile) buffers() *regScratch {
	if r.scratch == nil {
		r.scratch = new(regScratch)
	}
	return r.scratch
}

// open opens and maps the registry in dirfd, whose identity per stat is fi.
func (r *registryFile) open(dirfd int, fi fileInfo) error {
	if !fi.isReg() {
		return &fs.PathError{Op: "open", Path: r.path, Err: errors.New("registry is not a regular file")}
	}
	f, err := r.fs.OpenAt(dirfd, registryName, oRDWR, 0)
	if err != nil {
		return inDir(err, r.dir)
	}
	got, err := r.fs.Fstat(f)
	if err != nil {
		f.Close()
		return inDir(err, r.dir)
	}
	if got.dev != fi.dev || got.ino != fi.ino {
		// Replaced between the stat and the open; the caller retries.
		f.Close()
		return &fs.PathError{Op: "open", Path: r.path, Err: errReplaced}
	}
	if err := checkRegistrySize(got.size); err != nil {
		f.Close()
		return &fs.PathError{Op: "open", Path: r.path, Err: err}
	}
	data, err := mmapRead(int(f.Fd()), int(got.size))
	if err != nil {
		f.Close()
		return &fs.PathError{Op: "mmap", Path: r.path, Err: err}
	}
	r.close()
	r.f, r.data, r.id = f, data, got
	return nil
}

var errReplaced = errors.New("registry replaced while opening")

// checkRegistrySize refuses a registry file too short for its header and
// journal or too long for any capacity, before it is mapped or read.
func checkRegistrySize(size int64) error {
	if size < pagesOff || size > registrySize(MaxLocks) {
		return corruptf("registry is %d bytes", size)
	}
	return nil
}

// inDir turns an error of dirFS, whose *fs.PathError names a file relative
// to a directory descriptor, into one that names it under dir, the path
// the Manager was opened with, for messages. Other errors are returned as
// they are.
func inDir(err error, dir string) error {
	if pe, ok := err.(*fs.PathError); ok && !strings.ContainsRune(pe.Path, filepath.Separator) {
		return &fs.PathError{Op: pe.Op, Path: filepath.Join(dir, pe.Path), Err: pe.Err}
	}
	return err
}

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
		fi, err := r.fs.LstatAt(dirfd, registryName)
		if err != nil {
			return inDir(err, r.dir)
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
		if err := r.open(dirfd, fi); !errors.Is(err, errReplaced) {
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
		le.PutUint64(b[pgSeq:], pageSeq(p)+1)
		sealPage(b)
		return b
	}
	if err := r.writeAt(fillJournalRecord(r.buffers().record[:], i, p), journalOff); err != nil {
		// The page is untouched and valid. The journal may hold p, whole
		// (if only the sync failed) or torn; supersede it with the old
		// image.
		if rerr := r.writeAt(fillJournalRecord(r.buffers().record[:], i, back()), journalOff); rerr != nil {
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

// replace atomically replaces the whole registry in dirfd with img: it
// writes a temporary file, fsyncs it, renames it over the registry and
// fsyncs the directory, then maps the new file. Until the rename the old
// registry stands untouched; after it, the new one.
//
// The temporary file is made in a staging directory of this user's own,
// registry.tmp.<euid>, mode 0700, and renamed from there through the
// staging directory's descriptor. In a shared directory every member can
// unlink and rename any name, so a temporary file in the lock directory
// itself could be swapped for a member's symlink between our write and our
// rename, which would then install the symlink as the registry (issue 7,
// defect 2). Nobody but its owner can touch the entries of a 0700
// directory, so what the rename moves is the file we wrote. Its mode and
// group are set through its descriptor, never by name.
func (r *registryFile) replace(dirfd int, img []byte) error {
	euid := geteuid()
	staging := stagingName(euid)
	sd, err := r.openStaging(dirfd, staging, euid)
	if err != nil {
		return inDir(err, r.dir)
	}
	err = r.writeTemp(sd, img)
	if err == nil {
		err = r.fs.RenameAt(int(sd.Fd()), tmpName, dirfd, registryName)
	}
	if err != nil {
		_ = r.fs.UnlinkAt(int(sd.Fd()), tmpName)
		r.closeStaging(dirfd, sd, staging)
		return inDir(err, filepath.Join(r.dir, staging))
	}
	// The rename is done: the new registry is in place whatever follows.
	// A failed directory fsync only weakens durability across power loss,
	// and a staging directory left behind is reused by the next replace.
	syncErr := r.fs.SyncDir(dirfd)
	r.closeStaging(dirfd, sd, staging)
	if err := r.refresh(dirfd); err != nil {
		return fmt.Errorf("registry replaced, but reopening it failed: %w", err)
	}
	if syncErr != nil {
		return fmt.Errorf("registry replaced, but not durably: %w", inDir(syncErr, r.dir))
	}
	return nil
}

// stagingName is the staging directory of the user euid.
func stagingName(euid int) string { return tmpName + "." + strconv.Itoa(euid) }

// openStaging opens the staging directory name of the user euid (this
// process's) in dirfd, creating it if need be, and checks that it is a
// directory that only this user can change. One left by a replace that was
// killed is reused. Anything else at its name (a member's symlink, file or
// directory) is removed, if it can be, and the directory made afresh.
func (r *registryFile) openStaging(dirfd int, name string, euid int) (regFile, error) {
	var err error
	for try := 0; try < 2; try++ {
		var sd regFile
		var foreign bool
		if sd, foreign, err = r.tryStaging(dirfd, name, euid); err == nil {
			return sd, nil
		}
		if !foreign {
			return nil, err
		}
		// Not ours: unlink a symlink or file, rmdir an empty directory.
		if uerr := r.fs.UnlinkAt(dirfd, name); uerr != nil {
			_ = r.fs.RmdirAt(dirfd, name)
		}
	}
	return nil, err
}

// tryStaging is one attempt of openStaging. foreign says that the name
// holds something that is not this user's private directory.
func (r *registryFile) tryStaging(dirfd int, name string, euid int) (sd regFile, foreign bool, err error) {
	err = r.fs.MkdirAt(dirfd, name, 0o700)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, false, err
	}
	created := err == nil
	defer func() {
		if err != nil && created {
			_ = r.fs.RmdirAt(dirfd, name)
		}
	}()
	sd, err = r.fs.OpenAt(dirfd, name, oRDONLY|oDIRECTORY, 0)
	if err != nil {
		if cause := errors.Unwrap(err); isNotDirErr(cause) || isSymlinkErr(cause) {
			return nil, true, &fs.PathError{Op: "open", Path: name, Err: errUnsafe("staging directory is a symlink or not a directory")}
		}
		return nil, false, err
	}
	fi, err := r.fs.Fstat(sd)
	if err == nil && (!fi.isDir() || int(fi.uid) != euid || fi.mode&0o077 != 0) {
		foreign = true
		err = &fs.PathError{Op: "open", Path: name, Err: errUnsafe("staging directory is not private to uid %d (owner %d, mode %#o)", euid, fi.uid, fi.mode)}
	}
	if err != nil {
		sd.Close()
		return nil, foreign, err
	}
	return sd, false, nil
}

// closeStaging closes the staging directory sd and removes it, by name:
// if someone swapped another directory in at that name, rmdir removes it
// only if it is empty, and ours is left for the next replace. Both are
// tidying; their errors do not matter.
func (r *registryFile) closeStaging(dirfd int, sd regFile, name string) {
	_ = sd.Close()
	_ = r.fs.RmdirAt(dirfd, name)
}

// writeTemp writes img to a new registry.tmp in the staging directory sd,
// which only this user can change.
func (r *registryFile) writeTemp(sd regFile, img []byte) error {
	// A stale temporary file is left by a process killed mid-replace.
	if err := r.fs.UnlinkAt(int(sd.Fd()), tmpName); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := r.fs.OpenAt(int(sd.Fd()), tmpName, oWRONLY|oCREAT|oEXCL, uint32(r.perm))
	if err != nil {
		return err
	}
	if r.gid >= 0 {
		err = r.fs.Fchown(f, r.gid)
	}
	if err == nil {
		err = r.fs.Fchmod(f, uint32(r.perm)) // the umask may have narrowed it
	}
	if err == nil {
		_, err = f.WriteAt(img, 0)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
