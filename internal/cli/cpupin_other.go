//go:build !linux

package cli

// A cpuPin does nothing here: cpupin_linux.go says why lockdir pins its
// threads on Linux, where a thread's affinity can be set by its ID.
type cpuPin struct{}

func pinThreads() *cpuPin { return &cpuPin{} }

func (p *cpuPin) releaseSelf() {}

func (p *cpuPin) pinRest() {}
