/*
 * Shared by the bare-metal test guests (dom0-probe, bench): the arm64 Image
 * header that makes them bootable as Dom0 kernels, the shape of their EL1
 * vector table, the zeroing of BSS, and the handler that ends a run on an exception nobody
 * expected. Each guest includes it with `include_str!` ahead of its own
 * assembly and defines `entry` and the handlers it names.
 */

.section .text.head, "ax"
.global _start
_start:
    b       entry
    .long   0
    .quad   0                   /* text_offset */
    .quad   __image_size
    .quad   0x2                 /* little endian, 4 KiB pages */
    .quad   0, 0, 0
    .ascii  "ARM\x64"
    .long   0

.section .text

/* The EL1 vector table `vectors`: synchronous exceptions and IRQs from EL1
   with SP_EL1 go to `sync` and `irq`, everything else to `unexpected`. */
.macro vector_table sync, irq
.balign 0x800
vectors:
    .rept 4
    .balign 0x80
    b       unexpected
    .endr
    .balign 0x80
    b       \sync
    .balign 0x80
    b       \irq
    .rept 10
    .balign 0x80
    b       unexpected
    .endr
.endm

/* Zeroes BSS (__bss_start to __bss_end, 8-byte aligned); x1, x2 scratch. */
.macro zero_bss
    ldr     x1, =__bss_start
    ldr     x2, =__bss_end
8:  cmp     x1, x2
    b.hs    9f
    str     xzr, [x1], #8
    b       8b
9:
.endm

/* An exception nobody expected: leave QEMU with exit code 7. */
unexpected:
    mov     x0, #0x18
    adr     x1, unexpected_block
    hlt     #0xf000
    b       unexpected
.balign 8
unexpected_block:
    .quad   0x20026, 7

