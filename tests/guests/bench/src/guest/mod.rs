//! The guest proper: entry, exception vectors, and the run of measurements.

mod board;
mod domu;
mod ops;
mod out;
mod sgi;

use board::Board;
use core::arch::global_asm;
use out::Out;

global_asm!(concat!(
    include_str!("../../../common/image.S"),
    r#"
/* This CPU's stack and the vectors, then `function`, which does not return. */
.macro run_on stack, function
    ldr     x1, =\stack
    mov     sp, x1
    ldr     x1, =vectors
    msr     vbar_el1, x1
    isb
    mov     x0, x19
    bl      \function
0:  b       0b
.endm

/* Stores x9 at `symbol`; x10 is scratch. */
.macro record symbol
    ldr     x10, =\symbol
    str     x9, [x10]
.endm

/* Adds one to the counter at `symbol`; x9 and x10 are scratch. */
.macro count symbol
    ldr     x10, =\symbol
    ldr     x9, [x10]
    add     x9, x9, #1
    str     x9, [x10]
.endm

entry:
    mov     x19, x0
    zero_bss
    run_on  __stack0_top, bench_main

/* Where PSCI CPU_ON starts the second CPU (x0 = context id). */
.global secondary_start
secondary_start:
    mov     x19, x0
    run_on  __stack1_top, secondary_main

/* Synchronous exceptions at EL1 (the injected aborts) are counted and the
   instruction skipped; IRQs are acknowledged, ended and counted; anything
   else ends the run with exit code 7. */
vector_table sync_handler, irq_handler

sync_handler:
    stp     x9, x10, [sp, #-16]!
    mrs     x9, esr_el1
    record  LAST_ESR
    count   SYNC_EXCEPTIONS
    mrs     x9, elr_el1
    add     x9, x9, #4
    msr     elr_el1, x9
    ldp     x9, x10, [sp], #16
    eret

irq_handler:
    stp     x9, x10, [sp, #-16]!
    stp     x11, x12, [sp, #-16]!
    ldr     x11, =GICC_BASE
    ldr     x11, [x11]
    cbnz    x11, 6f                 /* a GICv2: its CPU interface */
    mrs     x9, s3_0_c12_c12_0      /* ICC_IAR1_EL1 */
    and     x10, x9, #0xffffff
    cmp     x10, #1020
    b.hs    5f                      /* spurious */
    msr     s3_0_c12_c12_1, x9      /* ICC_EOIR1_EL1 */
    count   IRQS_TAKEN
    b       5f
6:  ldr     w12, [x11, #0xc]        /* GICC_IAR */
    and     x10, x12, #0x3ff
    cmp     x10, #1020
    b.hs    5f                      /* spurious */
    str     w12, [x11, #0x10]       /* GICC_EOIR */
    count   IRQS_TAKEN
5:  ldp     x11, x12, [sp], #16
    ldp     x9, x10, [sp], #16
    eret
"#
));

/// What the vectors record (written by the exception handlers above).
#[unsafe(no_mangle)]
static mut LAST_ESR: u64 = 0;
#[unsafe(no_mangle)]
static mut SYNC_EXCEPTIONS: u64 = 0;
#[unsafe(no_mangle)]
static mut IRQS_TAKEN: u64 = 0;
/// A GICv2's CPU interface, for the IRQ vector; 0 on a GICv3.
#[unsafe(no_mangle)]
static mut GICC_BASE: u64 = 0;

/// Iterations per figure unless Dom0's command line says `iterations=N`.
const DEFAULT_ITERATIONS: u64 = 100_000;

#[unsafe(no_mangle)]
extern "C" fn bench_main(dtb: u64) -> ! {
    let mut out = Out::new();
    let board = match Board::read(dtb) {
        Ok(board) => board,
        Err(why) => {
            out.line(format_args!("bench: FAIL: device tree at {dtb:#x}: {why}"));
            out::exit(1);
        }
    };
    let n = board.iterations.unwrap_or(DEFAULT_ITERATIONS).max(1);
    let hz = ops::frequency();
    out.line(format_args!("bench: counter {hz} Hz, {n} iterations per figure, {} CPUs", board.cpus().len()));

    out.figure("loop", ops::empty_loop(n));
    if let Some(domid) = board.domu {
        // Beside a DomU (on the other CPU): the calls between the two.
        domu::run(&board, domid, &mut out, n);
        out.line(format_args!("bench: done"));
        out::exit(0)
    }
    let hypercall = ops::hypercalls(&mut out, n);
    out.figure("hypercall", hypercall);
    out.figure("gicd-read", ops::distributor_reads(&board, n));
    out.figure("abort", ops::aborts(&board, n));
    // Last: once started, the second CPU keeps a host core busy when it spins.
    let sgi = sgi::round_trips(&board, &mut out, n, sgi::Idle::Wfi);
    out.figure("sgi-round-trip", sgi);
    let sgi = sgi::round_trips(&board, &mut out, n, sgi::Idle::Spin);
    out.figure("sgi-round-trip-spinning", sgi);
    out.line(format_args!("bench: done"));
    out::exit(0)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    Out::new().line(format_args!("bench: PANIC: {}", info.message()));
    out::exit(9)
}
