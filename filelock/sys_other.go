//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package filelock

import (
	"errors"
	"time"
)

// On systems without flock(2), Create, Open and OpenOrCreate fail with an
// error matching errors.ErrUnsupported, and nothing below is reached.

const supported = false

const (
	lockEx = 2
	lockSh = 1
	lockUn = 8
	lockNB = 4

	oRDONLY    = 0
	oCREAT     = 0
	oEXCL      = 0
	oDIRECTORY = 0
	atFDCWD    = -100
)

func flock(fd int, how int) error                      { return errors.ErrUnsupported }
func isWouldBlock(err error) bool                      { return false }
func isTooManyFiles(err error) bool                    { return false }
func isSymlinkErr(err error) bool                      { return false }
func isNotDirErr(err error) bool                       { return false }
func fstat(fd int) (fileInfo, error)                   { return fileInfo{}, errors.ErrUnsupported }
func setBlocking(fd int) error                         { return errors.ErrUnsupported }
func lstatAt(dirfd int, name string) (fileInfo, error) { return fileInfo{}, errors.ErrUnsupported }
func openAt(dirfd int, name string, flags int, perm uint32) (int, error) {
	return -1, errors.ErrUnsupported
}
func mkdirAt(dirfd int, name string, perm uint32) error { return errors.ErrUnsupported }
func fchmod(fd int, perm uint32) error                  { return errors.ErrUnsupported }
func fchown(fd int, uid, gid int) error                 { return errors.ErrUnsupported }
func closeFD(fd int) error                              { return errors.ErrUnsupported }
func geteuid() int                                      { return -1 }
func mmapRead(fd int, size int) ([]byte, error)         { return nil, errors.ErrUnsupported }
func munmap(b []byte) error                             { return errors.ErrUnsupported }
func preadFull(fd int, b []byte, off int64) error       { return errors.ErrUnsupported }
func fileLimit() (uint64, error)                        { return 0, errors.ErrUnsupported }

const (
	oRDWR   = 0
	oWRONLY = 0
)

func renameAt(fromfd int, from string, tofd int, to string) error { return errors.ErrUnsupported }
func rmdirAt(dirfd int, name string) error                        { return errors.ErrUnsupported }
func unlinkAt(dirfd int, name string) error                       { return errors.ErrUnsupported }
func fsync(fd int) error                                          { return errors.ErrUnsupported }
func pwrite(fd int, b []byte, off int64) (int, error)             { return 0, errors.ErrUnsupported }

func linkAt(olddirfd int, oldname string, newdirfd int, newname string) error {
	return errors.ErrUnsupported
}
func ctimeAt(dirfd int, name string) (time.Time, bool, error) {
	return time.Time{}, false, errors.ErrUnsupported
}
func isLinkUnsupported(err error) bool      { return false }
func isNoReplaceUnsupported(err error) bool { return false }
func renameNoReplace(olddirfd int, oldname string, newdirfd int, newname string) error {
	return errors.ErrUnsupported
}
func statFollow(path string) (fileInfo, error) { return fileInfo{}, errors.ErrUnsupported }
