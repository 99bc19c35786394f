package filelock

import (
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// In shared mode a file or directory that other members must use appears
// under its final name only once it has its final mode and group, so that
// a creator killed at any instant leaves nothing another member cannot
// use (and nobody ever sees a half-made one):
//
//   - a file is created under a temporary name in the lock directory,
//     fchown'ed and fchmod'ed through its descriptor, then linkat(2)'ed to
//     its name; if the name is taken, someone else won, and their file is
//     opened instead. The temporary name is then unlinked.
//   - a directory (the lock directory itself, locks/) is made under a
//     temporary name next to it, fchown'ed and fchmod'ed, then renamed
//     into place with renameat2(RENAME_NOREPLACE), which fails if the name
//     is taken. A plain rename(2) would replace an empty directory that
//     another member already holds open, so it is never used.
//
// Where hard links or RENAME_NOREPLACE are missing, the file or directory
// is made in place and then given its mode, as private mode does; the
// other members then wait (settle) for it as they did before.
//
// A creator killed mid-way leaves a temporary name behind, which does no
// harm: no lockdir code reads it (isTempName), and cleanTemps removes it
// once it is older than staleTempAge.

// tmpPrefix starts every temporary name; see isTempName.
const tmpPrefix = ".lockdir-tmp."

// checkTempPrefix starts the counter files of 'lockdir check', which take
// the temporary prefix so that a leftover one does not make a directory
// look foreign. cleanTemps leaves them alone: a killed check's file
// records the lock ID it allocated, and the next check, which frees that
// ID, removes the file (internal/cli/check_record.go).
const checkTempPrefix = tmpPrefix + "check-"

// staleTempAge is how old a temporary name must be (by its ctime) before
// cleanTemps removes it. Creating takes microseconds; a creator stalled
// for longer than this finds its name gone and starts over. Tests lower it.
var staleTempAge = time.Minute

// testStep, if set, is called at each step of publishFileAt and
// publishDirAt, so that a test can kill the process there.
var testStep func(step string)

// forceInPlace makes publishFileAt and publishDirAt fall back to making
// things in place, as where hard links or RENAME_NOREPLACE are missing.
// Tests set it.
var forceInPlace bool

func step(s string) {
	if testStep != nil {
		testStep(s)
	}
}

// tempName returns a fresh temporary name for name.
func tempName(name string) string {
	return tmpPrefix + name + "." + strconv.FormatUint(rand.Uint64(), 36)
}

// publishAttempts bounds how often publishFileAt and publishDirAt start
// over when their temporary name vanishes (cleaned away as stale) or the
// winner's file vanishes before they can open it.
const publishAttempts = 10

// publishFileAt creates name in dirfd with the shared mode and group and
// returns a descriptor for it opened with flags, or opens the file another
// member published first. The temporary file lives in the lock directory,
// on the same file system, so that a crash leaves it where cleanTemps
// looks.
func (m *Manager) publishFileAt(dirfd int, name string, flags int) (int, error) {
	if forceInPlace {
		return m.createInPlaceAt(dirfd, name, flags)
	}
	var err error
	for range publishAttempts {
		tmp := tempName(name)
		fd, err := openAt(m.dirFD, tmp, flags|oCREAT|oEXCL, 0o600)
		if err != nil {
			return -1, err
		}
		step("file-created")
		if err := m.chmodShared(fd, uint32(m.filePerm())); err != nil {
			unlinkAt(m.dirFD, tmp)
			closeFD(fd)
			return -1, err
		}
		step("file-moded")
		err = linkAt(m.dirFD, tmp, dirfd, name)
		if err == nil {
			step("file-linked")
		}
		unlinkAt(m.dirFD, tmp)
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, fs.ErrExist):
			closeFD(fd)
			fd, err = openAt(dirfd, name, flags, 0)
			if !errors.Is(err, fs.ErrNotExist) {
				return fd, err
			}
		case errors.Is(err, fs.ErrNotExist):
			closeFD(fd) // tmp was cleaned away; start over
		case isLinkUnsupported(err):
			closeFD(fd)
			return m.createInPlaceAt(dirfd, name, flags)
		default:
			closeFD(fd)
			return -1, err
		}
	}
	return -1, err
}

// createInPlaceAt creates name in dirfd with O_EXCL and then gives it its
// mode (and in shared mode its group), or opens it if someone else
// created it. Between the two steps the file has the creator's umask and
// group: private mode, whose only user is the creator, does not mind;
// shared mode comes here only where publishFileAt cannot link.
func (m *Manager) createInPlaceAt(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := openAt(dirfd, name, flags|oCREAT|oEXCL, uint32(m.filePerm()))
		if errors.Is(err, fs.ErrExist) {
			fd, err = openAt(dirfd, name, flags, 0)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return fd, err
		}
		if err != nil {
			return -1, err
		}
		step("file-made-in-place")
		if err := m.chmodShared(fd, uint32(m.filePerm())); err != nil {
			closeFD(fd)
			return -1, err
		}
		return fd, nil
	}
}

// publishDirAt makes the directory path (relative to dirfd) with the
// shared mode and group, unless it exists. The temporary directory is
// made next to it, in the same parent.
func (m *Manager) publishDirAt(dirfd int, path string) error {
	if forceInPlace {
		return m.mkdirInPlaceAt(dirfd, path)
	}
	parent, name := filepath.Split(path)
	var err error
	for range publishAttempts {
		tmp := parent + tempName(name)
		if err = mkdirAt(dirfd, tmp, 0o700); err != nil {
			return err
		}
		step("dir-made")
		var fd int
		fd, err = openAt(dirfd, tmp, oRDONLY|oDIRECTORY, 0)
		if errors.Is(err, fs.ErrNotExist) {
			continue // tmp was cleaned away; start over
		}
		if err != nil {
			rmdirAt(dirfd, tmp)
			return err
		}
		err = m.chmodShared(fd, m.dirPerm())
		closeFD(fd)
		if err != nil {
			rmdirAt(dirfd, tmp)
			return err
		}
		step("dir-moded")
		err = renameNoReplace(dirfd, tmp, dirfd, path)
		switch {
		case err == nil:
			step("dir-renamed")
			return nil
		case errors.Is(err, fs.ErrExist):
			rmdirAt(dirfd, tmp) // another member's stands
			return nil
		case errors.Is(err, fs.ErrNotExist):
			// tmp was cleaned away; start over
		case isNoReplaceUnsupported(err):
			rmdirAt(dirfd, tmp)
			return m.mkdirInPlaceAt(dirfd, path)
		default:
			rmdirAt(dirfd, tmp)
			return err
		}
	}
	return err
}

// mkdirInPlaceAt makes the directory path (relative to dirfd) and then
// gives it its mode (and in shared mode its group), unless it exists.
func (m *Manager) mkdirInPlaceAt(dirfd int, path string) error {
	err := mkdirAt(dirfd, path, m.dirPerm())
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return err
	}
	step("dir-made-in-place")
	fd, err := openAt(dirfd, path, oRDONLY|oDIRECTORY, 0)
	if err != nil {
		return err
	}
	defer closeFD(fd)
	return m.chmodShared(fd, m.dirPerm())
}

// cleanTemps removes the temporary names in the directory dir (relative to
// dirfd) that start with prefix and are older than staleTempAge: the
// leftovers of creators killed mid-way, but not of checks. A leftover file may be a second
// name of a lock file in use; removing that name changes nothing for the
// lock. Errors are ignored: a leftover is clutter, not damage.
func cleanTemps(dirfd int, dir, prefix string) {
	fd, err := openAt(dirfd, dir, oRDONLY|oDIRECTORY, 0)
	if err != nil {
		return
	}
	f := os.NewFile(uintptr(fd), dir)
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	for _, name := range names {
		if !strings.HasPrefix(name, prefix) || !isTempName(name) || strings.HasPrefix(name, checkTempPrefix) {
			continue
		}
		ctime, isDir, err := ctimeAt(fd, name)
		if err != nil || time.Since(ctime) < staleTempAge {
			continue
		}
		if isDir {
			rmdirAt(fd, name)
		} else {
			unlinkAt(fd, name)
		}
	}
}
