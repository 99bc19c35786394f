package cli

// growStack grows the calling goroutine's stack once, to 16 KiB, while it
// is shallow.
//
// A goroutine's stack starts small and doubles when a call needs more; each
// growth copies the stack and adjusts every frame on it, which in a
// just-started process means first reads of the binary's function tables.
// In 'lockdir lock' the last growth came about 15 frames deep, in the
// directory's opening, and cost about 70 us (of about 4 ms, issue 12);
// here, two frames deep, it costs about 20 us, and lockdir's commands then
// run without another.
//
//go:noinline
func growStack(i int) byte {
	var frame [12 << 10]byte
	frame[i] = 1
	return frame[len(frame)-1-i]
}
