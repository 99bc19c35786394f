//go:build race && amd64 && gc && !purego

package filelock

import (
	"runtime"
	"unsafe"
)

// raceReadSlice tells the race detector of the reads of p that
// crc32cInstr's assembly makes, which it cannot see: without it, a write
// racing with a checksum went unreported under go test -race
// (TestRaceSeesChecksumReads).
func raceReadSlice(p []byte) {
	if len(p) > 0 {
		runtime.RaceReadRange(unsafe.Pointer(unsafe.SliceData(p)), len(p))
	}
}
