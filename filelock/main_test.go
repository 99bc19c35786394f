package filelock_test

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	if runChild() {
		return
	}
	os.Exit(m.Run())
}
