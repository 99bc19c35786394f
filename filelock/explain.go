package filelock

import (
	"errors"
	"io/fs"
)

// explainOpenDir explains why opening the directory name in dirfd with
// O_DIRECTORY|O_NOFOLLOW failed. Linux says ENOTDIR, not ELOOP, for a
// symlink opened that way, so a symlink is told apart by lstat.
func explainOpenDir(dirfd int, name string, err error) error {
	symlink := isSymlinkErr(err)
	if !symlink && isNotDirErr(err) {
		fi, lerr := lstatAt(dirfd, name)
		symlink = lerr == nil && fi.isLink()
	}
	switch {
	case symlink:
		return errors.New("is a symbolic link; refusing to follow it")
	case isNotDirErr(err):
		return errors.New("not a directory")
	}
	return err
}

func explainOpenFile(err error) error {
	if isSymlinkErr(err) {
		return errors.New("is a symbolic link; refusing to follow it")
	}
	return err
}

func wrapPath(err error, path string) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return &fs.PathError{Op: "read", Path: path, Err: err}
}
