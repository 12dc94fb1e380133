/*
 * First instructions of the hypervisor: the arm64 Image header, then the
 * primary CPU's entry. Runs with the MMU and caches off, x0 = the device tree
 * (Linux's arm64 boot protocol, which QEMU and U-Boot follow), wherever the
 * loader put the image: the code here addresses everything PC-relatively
 * (adrp/add, never a literal address) until the image has relocated itself.
 */

/* Xd = the runtime address of \sym (within 4 GiB of here). */
.macro addr_of reg, sym
    adrp    \reg, \sym
    add     \reg, \reg, :lo12:\sym
.endm

.section .text.head, "ax"
.global _start
_start:
    /* arm64 Image header (Linux Documentation/arch/arm64/booting.rst). */
    b       primary_entry           /* code0 */
    .long   0                       /* code1 */
    .quad   0                       /* text_offset */
    .quad   __image_size            /* image_size: the whole image, BSS and stacks included */
    .quad   0xa                     /* flags: little endian, 4 KiB pages, place anywhere */
    .quad   0                       /* res2 */
    .quad   0                       /* res3 */
    .quad   0                       /* res4 */
    .ascii  "ARM\x64"               /* magic */
    .long   0                       /* res5: no PE/COFF header */

/* SP = the top of CPU \index's boot stack (clobbers x1-x3). */
.macro stack_of_cpu index
    addr_of x1, BOOT_STACKS
    addr_of x2, BOOT_STACK_SIZE
    ldr     x2, [x2]
    add     x3, \index, #1
    madd    x1, x2, x3, x1
    mov     sp, x1
.endm

.section .text, "ax"
primary_entry:
    mov     x19, x0                 /* keep the device tree pointer */

    /*
     * Relocate: x20 = the load offset, runtime address minus link address.
     * Each R_AARCH64_RELATIVE entry (r_offset, r_info, r_addend) says: the
     * word at r_offset (a link address) holds r_addend + the offset. The
     * words also hold their link-time values, so at offset 0 there is
     * nothing to do. The offset must keep adrp's pages: 4 KiB aligned.
     * The stores go to memory (caches are off); the loader cleaned the
     * image to memory, so any cached copy of a relocated word is stale
     * and is invalidated.
     * Any other relocation type, or a word not 8-byte aligned (with the
     * MMU off memory is Device, where an unaligned store faults, and no
     * vector table is installed yet), means a build we cannot run: park.
     */
    addr_of x1, __image_start
    ldr     x2, link_address
    sub     x20, x1, x2
    tst     x20, #0xfff
    b.ne    park
    cbz     x20, 2f
    addr_of x1, __rela_start
    addr_of x2, __rela_end
1:  cmp     x1, x2
    b.hs    2f
    ldp     x3, x4, [x1], #16       /* r_offset, r_info */
    ldr     x5, [x1], #8            /* r_addend */
    cmp     x4, #1027               /* R_AARCH64_RELATIVE, symbol 0 */
    b.ne    park
    add     x5, x5, x20
    add     x3, x3, x20
    tst     x3, #7
    b.ne    park
    str     x5, [x3]
    dc      ivac, x3                /* no stale copy once caches are on */
    b       1b
2:
    dsb     sy
    addr_of x1, image_load_offset
    str     x20, [x1]

    /* Stack of CPU 0, then zero BSS (the stacks live there too, unused yet). */
    addr_of x1, __bss_start
    addr_of x2, __bss_end
1:  cmp     x1, x2
    b.hs    2f
    stp     xzr, xzr, [x1], #16
    b       1b
2:
    mov     x0, xzr
    stack_of_cpu x0

    mrs     x1, CurrentEL
    lsr     x1, x1, #2
    cmp     x1, #2
    b.ne    wrong_el

    addr_of x1, el2_vectors
    msr     vbar_el2, x1
    isb

    mov     x0, x19
    bl      primary_main            /* never returns */
    b       park

/*
 * Secondary CPUs, started through firmware PSCI CPU_ON when Dom0 starts
 * its vCPU: x0 = the CPU's index. The MMU goes on first, with the boot
 * CPU's tables (SECONDARY_MMU, cleaned to memory), so that everything
 * after sees memory coherently; then this CPU's stack and vectors.
 */
.global secondary_entry
secondary_entry:
    mov     x19, x0
    addr_of x1, SECONDARY_MMU
    ldp     x2, x3, [x1]            /* MAIR, TCR */
    msr     mair_el2, x2
    msr     tcr_el2, x3
    ldp     x2, x3, [x1, #16]       /* TTBR0, SCTLR */
    msr     ttbr0_el2, x2
    isb
    tlbi    alle2
    dsb     nsh
    isb
    msr     sctlr_el2, x3
    isb

    stack_of_cpu x19

    addr_of x1, el2_vectors
    msr     vbar_el2, x1
    isb

    mov     x0, x19
    bl      secondary_main          /* never returns */
    b       park

wrong_el:
    /* x0 = device tree, x1 = the exception level we were entered at. */
    mov     x0, x19
    bl      wrong_exception_level   /* prints why, never returns */

.global park
park:
    wfe
    b       park

/* The link address, a constant the linker writes (no relocation). */
.balign 8
link_address:
    .quad   __link_address

/* The load offset head.S applied (runtime minus link address), for the log. */
.section .data, "aw"
.balign 8
.global image_load_offset
image_load_offset:
    .quad   0
