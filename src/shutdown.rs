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
