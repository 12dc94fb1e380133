//! Emulated accesses, decoded once: a data abort's access is looked up in
//! the domain's MMIO regions, a trapped system register in one table by
//! its encoding, and the handler's result written back to the guest's
//! register here (XZR included). The caller advances ELR on success;
//! a refused access is the caller's to answer (an abort, an undefined
//! instruction).

use crate::arch::esr::{self, SysRegAccess, SysRegEncoding};
use crate::arch::exception::TrapFrame;
use crate::arch::trap_counts::Exit;
use crate::arch::vgic;
use crate::domain::mmio::Refused;
use crate::domain::vcpu::Vcpu;
use crate::mm::range::Ipa;

/// A data abort at `ipa` with syndrome `iss`: emulated if the syndrome
/// describes the access (ISV set, so a single register and no writeback)
/// and an emulated region holds `ipa`.
pub fn mmio(frame: &mut TrapFrame, vcpu: &Vcpu, ipa: u64, iss: u32) -> Result<(), Refused> {
    let access = esr::data_access(iss).ok_or(Refused)?;
    let regions = vcpu.domain().and_then(|d| d.mmio.get()).ok_or(Refused)?;
    let (region, offset) = regions.find(Ipa(ipa)).ok_or(Refused)?;
    if access.write {
        region.device.write(vcpu, offset, access.width, access.stored(frame.register(access.register)))
    } else {
        let value = region.device.read(vcpu, offset, access.width)?;
        frame.set_register(access.register, access.loaded(value));
        Ok(())
    }
}

/// An emulated system register: what reading and writing it do, and how
/// the exit is counted.
struct SysReg {
    encoding: SysRegEncoding,
    read: fn(&Vcpu) -> Result<u64, Refused>,
    write: fn(&Vcpu, u64) -> Result<(), Refused>,
    exit: Exit,
}

/// Every system register a guest's access to which traps and is emulated
/// (the GIC's SGI registers trap while HCR_EL2.IMO is set).
const SYSREGS: [SysReg; 3] = [
    // ICC_SGI1R_EL1
    SysReg { encoding: (3, 0, 12, 11, 5), read: vgic::read_sgi_register, write: vgic::write_sgi1r, exit: Exit::Sgi },
    // ICC_ASGI1R_EL1
    SysReg {
        encoding: (3, 0, 12, 11, 6),
        read: vgic::read_sgi_register,
        write: vgic::write_other_sgi_register,
        exit: Exit::Sgi,
    },
    // ICC_SGI0R_EL1
    SysReg {
        encoding: (3, 0, 12, 11, 7),
        read: vgic::read_sgi_register,
        write: vgic::write_other_sgi_register,
        exit: Exit::Sgi,
    },
];

/// A trapped MSR or MRS: emulated if the table has the register.
pub fn sysreg(frame: &mut TrapFrame, vcpu: &Vcpu, access: SysRegAccess) -> Result<Exit, Refused> {
    let register = SYSREGS.iter().find(|r| r.encoding == access.encoding).ok_or(Refused)?;
    if access.read {
        let value = (register.read)(vcpu)?;
        frame.set_register(access.register, value);
    } else {
        (register.write)(vcpu, frame.register(access.register))?;
    }
    Ok(register.exit)
}
