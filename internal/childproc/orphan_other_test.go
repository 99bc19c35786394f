//go:build !unix

package childproc_test

import "os"

// orphanRole and orphanPrintRole are Unix-only, as are the tests that
// start them.
func orphanRole()      { os.Exit(2) }
func orphanPrintRole() { os.Exit(2) }
