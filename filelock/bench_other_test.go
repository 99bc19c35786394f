//go:build !linux

package filelock_test

// removeBenchDirs has nothing to remove where the benchmarks (Linux only)
// do not build.
func removeBenchDirs() {}
