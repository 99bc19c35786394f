//go:build !race

package filelock_test

const raceEnabled = false
