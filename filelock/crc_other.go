//go:build !amd64

package filelock

import (
	"hash/crc32"
	"sync"
)

// haveCRC32Instr is false: lockdir has a CRC instruction of its own,
// crc32cInstr, only on amd64.
const haveCRC32Instr = false

// castagnoliTable is hash/crc32's table, made on first use.
var castagnoliTable = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// crc32cArch is crc32cUpdate with hash/crc32, which uses the CPU's CRC
// instruction where there is one (arm64, ppc64le, s390x, loong64,
// riscv64) and, unlike on amd64, builds no tables to do so.
func crc32cArch(crc uint32, p []byte) uint32 { return crc32.Update(crc, castagnoliTable(), p) }
