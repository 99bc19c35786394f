package torture

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// livenessBound scales base, a bound that says only "this happens at
// all", by the load on the machine: by the one-minute load average per
// CPU, when that is more than one. A timing bound that does not scale
// would be a speed assertion, and fail on a shared machine under load.
func livenessBound(base time.Duration) time.Duration {
	f := loadAverage() / float64(runtime.NumCPU())
	if f <= 1 {
		return base
	}
	return time.Duration(float64(base) * f)
}

// loadAverage is the one-minute load average from /proc/loadavg, or 0
// where there is none.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(fields[0], 64)
	return v
}
