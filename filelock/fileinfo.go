package filelock

// fileInfo is the part of stat(2) that filelock checks. It is portable: the
// conversion from the system's stat structure is the only part that lives
// behind the OS seam (toFileInfo in sys_unix.go). On systems without
// flock(2) nothing fills one in, and the zero value is neither a directory,
// a regular file nor a symlink.
type fileInfo struct {
	dev, ino uint64
	mode     uint32 // permission bits, setgid and sticky
	typ      uint32 // file type, as stat's S_IFMT bits
	uid, gid uint32
	size     int64
}

// The file types, with the S_IFMT values that POSIX leaves to the system but
// every Unix shares; sys_unix.go checks at compile time that unix.S_IF*
// agree, so typ can be stored as the raw bits (and printed as such in
// checkLockFile's error).
const (
	typeDir  = 0o040000
	typeReg  = 0o100000
	typeLink = 0o120000
)

func (fi fileInfo) isDir() bool  { return fi.typ == typeDir }
func (fi fileInfo) isReg() bool  { return fi.typ == typeReg }
func (fi fileInfo) isLink() bool { return fi.typ == typeLink }
