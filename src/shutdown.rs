//! Stopping the machine: a last log line, then QEMU's exit code through
//! semihosting, then PSCI SYSTEM_OFF; failing both, the CPU parks.

use crate::arch::semihosting;
use crate::console;
use crate::fatal::Stop;
use crate::println_emergency;

pub fn stop(why: Stop) -> ! {
    if why == Stop::PowerOff {
        println_emergency!("(HV) Powering off");
    } else {
        println_emergency!("(HV) System halted: {why:?} (exit code {})", why.code());
    }
    console::flush();
    semihosting::exit(why.code());
    if why == Stop::PowerOff {
        let _ = smccc::psci::system_off::<smccc::Smc>();
    }
    loop {
        aarch64_cpu::asm::wfe();
    }
}

/// Logs how Dom0 ended, audits its stage 2 once more, logs the free
/// memory, then stops the machine. The count is comparable with the one at
/// Dom0 entry: frames Dom0 ballooned out are free but still its own to take
/// back, so they are counted apart; any other difference is memory the
/// hypervisor lost.
pub fn stop_machine(why: core::fmt::Arguments<'_>, code: Stop) -> ! {
    use core::sync::atomic::Ordering;
    log::info!("d0: {why}");
    if let Some(dom0) = crate::domain::dom0() {
        crate::arch::trap_counts::log(dom0);
        crate::dom0::audit::again(dom0, "at shutdown");
    }
    let free = crate::mm::FRAMES.try_lock().and_then(|f| f.as_ref().map(|f| f.free_frames()));
    let ballooned = crate::domain::dom0().map_or(0, |d| d.xen.ballooned.load(Ordering::Acquire));
    match free {
        Some(free) => log::info!(
            "Free frames at shutdown: {}; and {ballooned} Dom0 ballooned out",
            free.saturating_sub(ballooned)
        ),
        None => log::info!("Free frames at shutdown: unknown (allocator busy)"),
    }
    stop(code)
}

/// Logs a fatal error and stops with its code.
#[macro_export]
macro_rules! fatal {
    ($stop:expr, $($arg:tt)*) => {{
        $crate::println_emergency!("(HV) FATAL: {}", format_args!($($arg)*));
        $crate::shutdown::stop($stop)
    }};
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    match info.location() {
        Some(at) => println_emergency!("(HV) PANIC at {}:{}: {}", at.file(), at.line(), info.message()),
        None => println_emergency!("(HV) PANIC: {}", info.message()),
    }
    stop(Stop::Panic)
}
