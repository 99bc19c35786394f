//go:build gc && !purego

#include "textflag.h"

// func cpuHasSSE42() bool
TEXT ·cpuHasSSE42(SB), NOSPLIT, $0-1
	MOVL	$1, AX
	XORL	CX, CX
	CPUID
	SHRL	$20, CX
	ANDL	$1, CX
	MOVB	CX, ret+0(FP)
	RET

// func crc32cWords(r uint32, p []byte) uint32
TEXT ·crc32cWords(SB), NOSPLIT, $0-36
	MOVL	r+0(FP), AX
	MOVQ	p_base+8(FP), SI
	MOVQ	p_len+16(FP), CX
words:
	CMPQ	CX, $8
	JB	bytes
	CRC32Q	(SI), AX
	ADDQ	$8, SI
	SUBQ	$8, CX
	JMP	words
bytes:
	TESTQ	CX, CX
	JZ	done
	CRC32B	(SI), AX
	INCQ	SI
	DECQ	CX
	JMP	bytes
done:
	MOVL	AX, ret+32(FP)
	RET

// func crc32cStripes(r uint32, p []byte) (a, b, c uint32)
//
// p is 3*crcStripe (2,040) bytes: three stripes of 85 words.
TEXT ·crc32cStripes(SB), NOSPLIT, $0-44
	MOVL	r+0(FP), AX
	MOVQ	p_base+8(FP), SI
	XORL	BX, BX
	XORL	DX, DX
	MOVQ	$85, CX
stripes:
	CRC32Q	(SI), AX
	CRC32Q	680(SI), BX
	CRC32Q	1360(SI), DX
	ADDQ	$8, SI
	DECQ	CX
	JNZ	stripes
	MOVL	AX, a+32(FP)
	MOVL	BX, b+36(FP)
	MOVL	DX, c+40(FP)
	RET
