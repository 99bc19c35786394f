package filelock

// CRC32CForTest is crc32c, for TestRaceSeesChecksumReads.
var CRC32CForTest = crc32c
