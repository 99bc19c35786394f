//go:build !linux

package cli

import "os"

// filesystemInfo cannot tell the filesystem type outside Linux.
func filesystemInfo(dir string) (name, warning string) { return "", "" }

// isTerminal reports false outside Linux: check shows no progress there.
func isTerminal(f *os.File) bool { return false }
