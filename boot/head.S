/*
 * First instructions of the hypervisor: the arm64 Image header, then the
 * primary CPU's entry. Runs with the MMU and caches off, x0 = the device tree
 * (Linux's arm64 boot protocol, which QEMU and U-Boot follow).
 */

.section .text.head, "ax"
.global _start
_start:
    /* arm64 Image header (Linux Documentation/arch/arm64/booting.rst). */
    b       primary_entry           /* code0 */
    .long   0                       /* code1 */
    .quad   0                       /* text_offset */
    .quad   __image_size            /* image_size: the whole image, BSS included */
    .quad   0x2                     /* flags: little endian, 4 KiB pages, low placement */
    .quad   0                       /* res2 */
    .quad   0                       /* res3 */
    .quad   0                       /* res4 */
    .ascii  "ARM\x64"               /* magic */
    .long   0                       /* res5: no PE/COFF header */

/* SP = the top of CPU \index's boot stack (clobbers x1-x3). */
.macro stack_of_cpu index
    ldr     x1, =BOOT_STACKS
    ldr     x2, =BOOT_STACK_SIZE
    ldr     x2, [x2]
    add     x3, \index, #1
    madd    x1, x2, x3, x1
    mov     sp, x1
.endm

.section .text, "ax"
primary_entry:
    mov     x19, x0                 /* keep the device tree pointer */

    /* Not where we were linked? We cannot run Rust code there: park. */
    adr     x1, _start
    ldr     x2, =_start
    cmp     x1, x2
    b.ne    park

    /* Stack of CPU 0, then zero BSS (the stacks live there too, unused yet). */
    ldr     x1, =__bss_start
    ldr     x2, =__bss_end
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

    ldr     x1, =el2_vectors
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
    ldr     x1, =SECONDARY_MMU
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

    ldr     x1, =el2_vectors
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
