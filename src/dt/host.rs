//! What the hypervisor needs from the host device tree: RAM, reservations,
//! CPUs, the interrupt controller, its console, the boot modules and the
//! command lines (Xen's boot protocol, `docs/misc/arm/device-tree/booting.txt`).

use super::DtError;
use super::props::{str_of, strings, u32_of};
use super::walk::{Bus, Descend, NodeProps, Path, RegProblem, Visit, cells_name, path_of, walk};
use crate::mm::range::{PhysRange, RangeSet};
use arrayvec::ArrayVec;
use core::fmt;
use dtoolkit::fdt::{Fdt, FdtNode, FdtProperty};
use dtoolkit::{Node, Property};

pub const MAX_BANKS: usize = 32;
pub const MAX_RESERVED: usize = 64;
use crate::config::MAX_CPUS;
pub const MAX_MODULES: usize = 8;
pub const MAX_WARNINGS: usize = 16;
pub const MAX_REDIST_REGIONS: usize = 8;
/// Boot-time DomUs (`/chosen` nodes compatible with `xen,domain`) we build.
pub const MAX_DOMUS: usize = 4;
/// DomU nodes refused, kept for the log.
pub const MAX_DOMU_ERRORS: usize = 8;

/// Why a range of RAM is not the hypervisor's to hand out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationKind<'a> {
    /// A `/memreserve/` entry of the blob header.
    MemReserve,
    /// A `/reserved-memory` child with a static `reg`.
    ReservedMemory { name: &'a str, no_map: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation<'a> {
    pub range: PhysRange,
    pub kind: ReservationKind<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModuleKind {
    Kernel,
    Ramdisk,
    XsmPolicy,
    DeviceTree,
    /// A `multiboot,module` with nothing more specific, past the first two.
    Other,
}

impl ModuleKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::Kernel => "kernel",
            Self::Ramdisk => "ramdisk",
            Self::XsmPolicy => "XSM policy",
            Self::DeviceTree => "device tree",
            Self::Other => "module",
        }
    }
}

/// A boot module from `/chosen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Module<'a> {
    pub kind: ModuleKind,
    pub range: PhysRange,
    pub bootargs: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cpu<'a> {
    /// The `reg` of the CPU node: its MPIDR affinity bits.
    pub mpidr: u64,
    pub enable_method: Option<&'a str>,
    /// Its `compatible` strings as the tree has them (NUL-terminated
    /// each), which Xen copies into a DomU's CPU nodes.
    pub compatible: Option<&'a [u8]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GicVersion {
    V2,
    V3,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gic {
    pub version: GicVersion,
    pub path: Path,
    pub distributor: PhysRange,
    /// GICv3 redistributor regions (empty for GICv2).
    pub redistributors: ArrayVec<PhysRange, MAX_REDIST_REGIONS>,
    /// GICv2 CPU interface, or GICv3's optional legacy one.
    pub cpu_interface: Option<PhysRange>,
    /// The virtual interface control (GICH) and virtual CPU interface
    /// (GICV), the next two `reg` entries, when the GIC has virtualisation
    /// extensions.
    pub hypervisor_interface: Option<PhysRange>,
    pub virtual_cpu_interface: Option<PhysRange>,
    /// The maintenance interrupt's INTID.
    pub maintenance_intid: Option<u32>,
}

impl Gic {
    /// What the hypervisor drives, mapped at EL2: the distributor, the
    /// redistributors, and a GICv2's CPU interface and virtual interface
    /// control.
    pub fn driven(&self) -> impl Iterator<Item = PhysRange> + '_ {
        let v2 =
            if self.version == GicVersion::V2 { [self.cpu_interface, self.hypervisor_interface] } else { [None; 2] };
        core::iter::once(self.distributor).chain(self.redistributors.iter().copied()).chain(v2.into_iter().flatten())
    }

    /// Where a GICv2 guest's CPU interface is: the CPU interface's
    /// addresses (as many bytes of them as GICV has), and the virtual CPU
    /// interface's frames behind them, as Xen maps them. None unless both
    /// hold DIR's page (8 KiB or more).
    pub fn virtual_cpu_window(&self) -> Option<(PhysRange, u64)> {
        use crate::gic::registers::gicc::MIN_SIZE;
        match (self.version, self.cpu_interface, self.virtual_cpu_interface) {
            (GicVersion::V2, Some(cpu), Some(gicv)) if cpu.size() >= MIN_SIZE && gicv.size() >= MIN_SIZE => {
                Some((PhysRange::new(cpu.start, cpu.start + cpu.size().min(gicv.size())), gicv.start))
            }
            _ => None,
        }
    }

    /// What Dom0 never gets at its own address: what the hypervisor drives,
    /// and a GICv2's virtual CPU interface, which Dom0 gets at the CPU
    /// interface's address instead.
    pub fn kept(&self) -> impl Iterator<Item = PhysRange> + '_ {
        let gicv = if self.version == GicVersion::V2 { self.virtual_cpu_interface } else { None };
        self.driven().chain(gicv)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Console {
    pub path: Path,
    pub mmio: PhysRange,
    /// The UART's interrupt as an INTID, when it has a GIC `interrupts` entry.
    pub intid: Option<u32>,
}

/// Which property a command line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineSource {
    XenBootargs,
    Dom0Bootargs,
    ChosenBootargs,
    KernelModule,
}

impl CmdlineSource {
    pub fn property(self) -> &'static str {
        match self {
            Self::XenBootargs => "/chosen/xen,xen-bootargs",
            Self::Dom0Bootargs => "/chosen/xen,dom0-bootargs",
            Self::ChosenBootargs => "/chosen/bootargs",
            Self::KernelModule => "bootargs of the kernel module",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cmdline<'a> {
    pub text: &'a str,
    pub source: CmdlineSource,
}

/// `xen,enhanced` of a DomU node: which Xen interfaces it is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enhanced {
    /// Absent or `"disabled"`: no PV interfaces (no `/hypervisor` node).
    Disabled,
    /// `"enabled"` (or empty, as Xen reads it): grant table, event channels, xenstore.
    Enabled,
    /// `"no-xenstore"`: grant table and event channels without xenstore.
    NoXenstore,
}

/// A boot-time DomU from Xen's dom0less binding
/// (`docs/misc/arm/device-tree/booting.txt`): a `/chosen` child with
/// `compatible = "xen,domain"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomU<'a> {
    pub path: Path,
    /// RAM in bytes (`memory` is in KiB, a 64-bit number as Xen reads it).
    pub memory: u64,
    pub cpus: u32,
    pub enhanced: Enhanced,
    /// `vpl011` was given: the DomU gets an emulated SBSA UART.
    pub vpl011: bool,
    pub kernel: PhysRange,
    /// The kernel module's `bootargs`, else the domain node's.
    pub bootargs: Option<&'a str>,
    pub ramdisk: Option<PhysRange>,
}

impl DomU<'_> {
    /// Its modules: the kernel, then the ramdisk if any.
    pub fn modules(&self) -> impl Iterator<Item = (ModuleKind, PhysRange)> + '_ {
        core::iter::once((ModuleKind::Kernel, self.kernel)).chain(self.ramdisk.map(|r| (ModuleKind::Ramdisk, r)))
    }
}

/// A DomU node refused: the boot goes on without that DomU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomUError {
    pub node: Path,
    pub why: &'static str,
    pub range: Option<PhysRange>,
}

impl fmt::Display for DomUError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: DomU not built: {}", self.node, self.why)?;
        if let Some(r) = self.range {
            write!(f, " ({r})")?;
        }
        Ok(())
    }
}

/// Something odd in the tree that we worked around; logged after boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub node: Path,
    pub what: &'static str,
    pub range: Option<PhysRange>,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.node, self.what)?;
        if let Some(r) = self.range {
            write!(f, " ({r})")?;
        }
        Ok(())
    }
}

/// The host device tree, read.
#[derive(Debug, Clone)]
pub struct HostTree<'a> {
    pub model: Option<&'a str>,
    pub root_address_cells: u32,
    pub root_size_cells: u32,
    /// RAM as listed in the `/memory` nodes (non-empty entries).
    pub banks: ArrayVec<PhysRange, MAX_BANKS>,
    /// RAM as a set: banks merged where they touch or overlap.
    pub ram: RangeSet<MAX_BANKS>,
    pub reserved: ArrayVec<Reservation<'a>, MAX_RESERVED>,
    pub cpus: ArrayVec<Cpu<'a>, MAX_CPUS>,
    pub gic: Option<Gic>,
    pub console: Option<Console>,
    /// The virtual timer's interrupt (the third of the `arm,armv8-timer`
    /// node's: secure, non-secure, virtual, hypervisor).
    pub virtual_timer_intid: Option<u32>,
    pub modules: ArrayVec<Module<'a>, MAX_MODULES>,
    pub xen_cmdline: Option<Cmdline<'a>>,
    pub dom0_cmdline: Option<Cmdline<'a>>,
    /// Boot-time DomUs, in tree order (domain ids 1, 2, ...).
    pub domus: ArrayVec<DomU<'a>, MAX_DOMUS>,
    /// DomU nodes refused, each a one-line reason.
    pub domu_errors: ArrayVec<DomUError, MAX_DOMU_ERRORS>,
    pub warnings: ArrayVec<Warning, MAX_WARNINGS>,
    /// Warnings beyond `MAX_WARNINGS`.
    pub dropped_warnings: usize,
}

impl<'a> HostTree<'a> {
    /// Reads the tree. Structural problems are errors; odd but usable
    /// content (an empty bank, an unusable reservation) becomes a warning.
    pub fn parse(blob: &'a [u8]) -> Result<Self, DtError> {
        let fdt = Fdt::new(blob).map_err(DtError::Blob)?;
        Self::from_fdt(&fdt)
    }

    pub fn from_fdt(fdt: &Fdt<'a>) -> Result<Self, DtError> {
        let root = fdt.root();
        let mut tree = HostTree {
            model: root.property("model").as_ref().and_then(str_of),
            root_address_cells: 2,
            root_size_cells: 1,
            banks: ArrayVec::new(),
            ram: RangeSet::new(),
            reserved: ArrayVec::new(),
            cpus: ArrayVec::new(),
            gic: None,
            console: None,
            virtual_timer_intid: None,
            modules: ArrayVec::new(),
            xen_cmdline: None,
            dom0_cmdline: None,
            domus: ArrayVec::new(),
            domu_errors: ArrayVec::new(),
            warnings: ArrayVec::new(),
            dropped_warnings: 0,
        };
        for cells in ["#address-cells", "#size-cells"] {
            let value = root.property(cells).as_ref().map(u32_of);
            let n = match value {
                None => continue,
                Some(Some(n @ 1..=2)) => n,
                Some(_) => return Err(DtError::BadCells { node: path_of("/"), property: cells_name(cells) }),
            };
            if cells == "#address-cells" {
                tree.root_address_cells = n;
            } else {
                tree.root_size_cells = n;
            }
        }

        for entry in fdt.memory_reservations() {
            let range = PhysRange::from_start_size(entry.address(), entry.size())
                .ok_or(DtError::BadReg { node: path_of("/memreserve/"), problem: RegProblem::Wraps })?;
            if !range.is_empty() {
                tree.push_reservation(Reservation { range, kind: ReservationKind::MemReserve })?;
            }
        }

        let console_path = stdout_path(fdt);
        let mut chosen_bus = None;
        walk(fdt, &mut |visit| tree.visit(visit, console_path, &mut chosen_bus))?;

        if tree.banks.is_empty() {
            return Err(DtError::NoMemory);
        }
        if let Some(path) = console_path
            && tree.console.is_none()
        {
            tree.warn(path, "stdout-path names no usable PL011 UART", None);
        }
        tree.assign_cmdlines(fdt);
        tree.check_domu_modules();
        Ok(tree)
    }

    fn visit(
        &mut self,
        visit: &Visit<'a, '_>,
        console_path: Option<&str>,
        chosen_bus: &mut Option<Bus>,
    ) -> Result<Descend, DtError> {
        let props = visit.props;
        if props.is_disabled() {
            return Ok(Descend::No);
        }
        match visit.depth {
            1 if props.device_type_is("memory") => self.read_memory(visit)?,
            2 if visit.path.starts_with("/reserved-memory/") => self.read_reserved(visit)?,
            2 if visit.path.starts_with("/cpus/") && props.device_type_is("cpu") => self.read_cpu(visit)?,
            2 if visit.path.starts_with("/chosen/") && is_domain(props) => {
                self.read_domu(visit);
                return Ok(Descend::No);
            }
            2 if visit.path.starts_with("/chosen/") => self.read_module(visit, chosen_bus)?,
            1 if visit.path == "/chosen" => {
                *chosen_bus = Some(chosen_child_bus(props, self.root_address_cells, self.root_size_cells));
            }
            _ => {}
        }
        if self.gic.is_none()
            && let Some(version) = gic_version(props)
        {
            self.read_gic(visit, version)?;
        }
        if console_path.is_some_and(|p| resolves_to(p, visit.path)) {
            self.read_console(visit);
        }
        if self.virtual_timer_intid.is_none()
            && visit
                .props
                .compatible
                .is_some_and(|c| strings(&c).any(|s| s == "arm,armv8-timer" || s == "arm,armv7-timer"))
        {
            // Three cells an entry (the GIC's binding); the third entry.
            self.virtual_timer_intid = visit.props.interrupts.and_then(|p| p.value().get(24..36).and_then(first_intid));
        }
        Ok(Descend::Yes)
    }

    fn warn(&mut self, node: &str, what: &'static str, range: Option<PhysRange>) {
        let warning = Warning { node: path_of(node), what, range };
        if self.warnings.try_push(warning).is_err() {
            self.dropped_warnings += 1;
        }
    }

    fn push_reservation(&mut self, r: Reservation<'a>) -> Result<(), DtError> {
        self.reserved.try_push(r).map_err(|_| DtError::TooMany { what: "reserved ranges", limit: MAX_RESERVED })
    }

    /// Every `reg` entry of the node, with unusable ones reported.
    fn regs(&mut self, visit: &Visit<'a, '_>) -> ArrayVec<PhysRange, MAX_BANKS> {
        let mut out = ArrayVec::new();
        let Some(reg) = visit.props.reg else { return out };
        for result in visit.bus.regs(reg.value()) {
            match result {
                Ok(range) if out.try_push(range).is_ok() => {}
                Ok(range) => self.warn(visit.path, "too many reg entries; rest ignored", Some(range)),
                Err(problem) => self.warn(visit.path, problem.describe(), None),
            }
        }
        out
    }

    fn read_memory(&mut self, visit: &Visit<'a, '_>) -> Result<(), DtError> {
        let Some(reg) = visit.props.reg else {
            self.warn(visit.path, "memory node without reg", None);
            return Ok(());
        };
        for result in visit.bus.regs(reg.value()) {
            let range = result.map_err(|problem| DtError::BadReg { node: path_of(visit.path), problem })?;
            if range.is_empty() {
                self.warn(visit.path, "zero-sized RAM bank ignored", Some(range));
                continue;
            }
            if self.ram.overlaps(&range) {
                self.warn(visit.path, "RAM bank overlaps another; merged", Some(range));
            }
            self.banks.try_push(range).map_err(|_| DtError::TooMany { what: "RAM banks", limit: MAX_BANKS })?;
            self.ram.insert(range).map_err(|_| DtError::TooMany { what: "RAM banks", limit: MAX_BANKS })?;
        }
        Ok(())
    }

    fn read_reserved(&mut self, visit: &Visit<'a, '_>) -> Result<(), DtError> {
        let node = &visit.node;
        let no_map = node.property("no-map").is_some();
        let name = node.name();
        let regs = self.regs(visit);
        if regs.is_empty() && node.property("size").is_some() {
            // Dynamically placed: the OS that owns the memory allocates it.
            self.warn(visit.path, "dynamic reserved-memory region left to Dom0", None);
        }
        for range in regs.into_iter().filter(|r| !r.is_empty()) {
            self.push_reservation(Reservation { range, kind: ReservationKind::ReservedMemory { name, no_map } })?;
        }
        Ok(())
    }

    fn read_cpu(&mut self, visit: &Visit<'a, '_>) -> Result<(), DtError> {
        let node = &visit.node;
        let Some(reg) = visit.props.reg else {
            self.warn(visit.path, "cpu node without reg ignored", None);
            return Ok(());
        };
        let width = visit.bus.address_cells as usize * 4;
        let value = reg.value();
        let mpidr = if (width == 4 || width == 8) && value.len() >= width {
            let cells: ArrayVec<u32, 2> = super::props::cells(&value[..width]).collect();
            super::props::number(&cells)
        } else {
            None
        };
        let Some(mpidr) = mpidr else {
            self.warn(visit.path, "cpu reg is not an MPIDR; CPU ignored", None);
            return Ok(());
        };
        let enable_method = node.property("enable-method").as_ref().and_then(str_of);
        let compatible = visit.props.compatible.as_ref().map(super::props::bytes).filter(|c| c.last() == Some(&0));
        self.cpus
            .try_push(Cpu { mpidr, enable_method, compatible })
            .map_err(|_| DtError::TooMany { what: "CPUs", limit: MAX_CPUS })
    }

    fn read_module(&mut self, visit: &Visit<'a, '_>, chosen_bus: &Option<Bus>) -> Result<(), DtError> {
        let node = &visit.node;
        let Some(compatible) = visit.props.compatible else { return Ok(()) };
        let compat = || strings(&compatible);
        if !compat().any(|c| c == "multiboot,module" || c == "xen,multiboot-module") {
            return Ok(());
        }
        let specific = compat().find_map(|c| match c {
            "multiboot,kernel" | "xen,linux-zimage" => Some(ModuleKind::Kernel),
            "multiboot,ramdisk" | "xen,linux-initrd" => Some(ModuleKind::Ramdisk),
            "xen,xsm-policy" => Some(ModuleKind::XsmPolicy),
            "multiboot,device-tree" => Some(ModuleKind::DeviceTree),
            _ => None,
        });
        // Xen: the first module without a specific kind is the kernel, the
        // second the ramdisk (we do not sniff for XSM policies).
        let kind = specific.unwrap_or_else(|| {
            let unspecific = self.modules.iter().filter(|m| m.kind == ModuleKind::Other).count();
            match (self.module(ModuleKind::Kernel), self.module(ModuleKind::Ramdisk), unspecific) {
                (None, _, _) => ModuleKind::Kernel,
                (Some(_), None, _) => ModuleKind::Ramdisk,
                _ => ModuleKind::Other,
            }
        });
        if self.module(kind).is_some() && kind != ModuleKind::Other {
            return Err(DtError::DuplicateModule { node: path_of(visit.path), kind: kind.name() });
        }
        let Some(reg) = visit.props.reg else {
            return Err(DtError::BadModule { node: path_of(visit.path), why: "no reg property" });
        };
        let bus = chosen_bus.clone().unwrap_or_else(|| Bus::root(self.root_address_cells, self.root_size_cells));
        let mut regs = bus.regs(reg.value());
        let range = match (regs.next(), regs.next()) {
            (Some(Ok(range)), None) => range,
            (Some(Err(problem)), _) => return Err(DtError::BadReg { node: path_of(visit.path), problem }),
            _ => return Err(DtError::BadModule { node: path_of(visit.path), why: "reg must hold exactly one range" }),
        };
        if range.is_empty() {
            return Err(DtError::BadModule { node: path_of(visit.path), why: "module is empty" });
        }
        let bootargs = node.property("bootargs").as_ref().and_then(str_of);
        self.modules
            .try_push(Module { kind, range, bootargs })
            .map_err(|_| DtError::TooMany { what: "boot modules", limit: MAX_MODULES })
    }

    fn read_gic(&mut self, visit: &Visit<'a, '_>, version: GicVersion) -> Result<(), DtError> {
        let regs = self.regs(visit);
        let redist_count = match version {
            GicVersion::V2 => 0,
            GicVersion::V3 => {
                visit.node.property("#redistributor-regions").as_ref().and_then(u32_of).unwrap_or(1) as usize
            }
        };
        let Some(&distributor) = regs.first() else {
            return Err(DtError::BadGic { node: path_of(visit.path), why: "no distributor in reg" });
        };
        if redist_count == 0 && version == GicVersion::V3 || redist_count > MAX_REDIST_REGIONS {
            return Err(DtError::BadGic { node: path_of(visit.path), why: "bad #redistributor-regions" });
        }
        let redistributors: ArrayVec<PhysRange, MAX_REDIST_REGIONS> =
            regs.iter().skip(1).take(redist_count).copied().collect();
        if redistributors.len() != redist_count {
            return Err(DtError::BadGic {
                node: path_of(visit.path),
                why: "fewer redistributor regions than announced",
            });
        }
        let cpu_interface = regs.get(1 + redist_count).copied();
        let hypervisor_interface = regs.get(2 + redist_count).copied();
        let virtual_cpu_interface = regs.get(3 + redist_count).copied();
        if version == GicVersion::V2 && cpu_interface.is_none() {
            return Err(DtError::BadGic { node: path_of(visit.path), why: "no CPU interface in reg" });
        }
        let maintenance_intid = visit.props.interrupts.and_then(|p| first_intid(p.value()));
        self.gic = Some(Gic {
            version,
            path: path_of(visit.path),
            distributor,
            redistributors,
            cpu_interface,
            hypervisor_interface,
            virtual_cpu_interface,
            maintenance_intid,
        });
        Ok(())
    }

    fn read_console(&mut self, visit: &Visit<'a, '_>) {
        let is_pl011 =
            visit.props.compatible.is_some_and(|c| strings(&c).any(|s| s == "arm,pl011" || s == "arm,sbsa-uart"));
        if !is_pl011 {
            self.warn(visit.path, "console is not a PL011; not used", None);
            return;
        }
        let Some(&mmio) = self.regs(visit).first() else {
            self.warn(visit.path, "console has no usable reg", None);
            return;
        };
        let intid = visit.props.interrupts.and_then(|p| first_intid(p.value()));
        self.console = Some(Console { path: path_of(visit.path), mmio, intid });
    }

    fn domu_error(&mut self, node: &str, why: &'static str, range: Option<PhysRange>) {
        if self.domu_errors.try_push(DomUError { node: path_of(node), why, range }).is_err() {
            self.dropped_warnings += 1;
        }
    }

    fn read_domu(&mut self, visit: &Visit<'a, '_>) {
        let domu = match parse_domu(&visit.node, visit.path) {
            Ok(domu) => domu,
            Err(why) => return self.domu_error(visit.path, why, None),
        };
        if self.domus.is_full() {
            return self.domu_error(visit.path, "more DomUs than the 4 supported", None);
        }
        self.domus.push(domu);
    }

    /// Once RAM and every module are known: a DomU whose modules lie
    /// outside RAM, or overlap another module, is dropped.
    fn check_domu_modules(&mut self) {
        let mut i = 0;
        while i < self.domus.len() {
            let domu = &self.domus[i];
            let others = || {
                let dom0s = self.modules.iter().map(|m| m.range);
                let domus = self
                    .domus
                    .iter()
                    .enumerate()
                    .filter(|&(j, _)| j != i)
                    .flat_map(|(_, d)| d.modules().map(|(_, r)| r));
                dom0s.chain(domus)
            };
            let problem = domu.modules().find_map(|(kind, range)| {
                if !self.ram.contains_range(&range) {
                    let why = if kind == ModuleKind::Kernel {
                        "kernel module is not inside RAM"
                    } else {
                        "ramdisk module is not inside RAM"
                    };
                    Some((why, range))
                } else if others().any(|o| o.overlaps(&range)) {
                    Some(("a module overlaps another boot module", range))
                } else {
                    None
                }
            });
            match problem {
                Some((why, range)) => {
                    let path = domu.path;
                    self.domus.remove(i);
                    self.domu_error(&path, why, Some(range));
                }
                None => i += 1,
            }
        }
    }

    /// The module of a kind, if any.
    pub fn module(&self, kind: ModuleKind) -> Option<&Module<'a>> {
        self.modules.iter().find(|m| m.kind == kind)
    }

    /// Xen's precedence: the hypervisor takes `xen,xen-bootargs`, or else
    /// `bootargs` when something else (`xen,dom0-bootargs` or the kernel
    /// module's `bootargs`) provides Dom0's. Dom0 takes `xen,dom0-bootargs`,
    /// else the kernel module's `bootargs`, else `bootargs` unless the
    /// hypervisor took it.
    fn assign_cmdlines(&mut self, fdt: &Fdt<'a>) {
        let chosen = fdt.root().child("chosen");
        let chosen_prop = |name: &str| chosen.as_ref().and_then(|c| c.property(name)).as_ref().and_then(str_of);
        let xen_bootargs = chosen_prop("xen,xen-bootargs");
        let dom0_bootargs = chosen_prop("xen,dom0-bootargs");
        let bootargs = chosen_prop("bootargs");
        let module_bootargs = self.module(ModuleKind::Kernel).and_then(|m| m.bootargs).filter(|s| !s.is_empty());

        let cmdline = |text: Option<&'a str>, source| text.map(|text| Cmdline { text, source });
        self.xen_cmdline = match xen_bootargs {
            Some(text) => cmdline(Some(text), CmdlineSource::XenBootargs),
            None if dom0_bootargs.is_some() || module_bootargs.is_some() => {
                cmdline(bootargs, CmdlineSource::ChosenBootargs)
            }
            None => None,
        };
        let bootargs_for_dom0 = match self.xen_cmdline {
            Some(Cmdline { source: CmdlineSource::ChosenBootargs, .. }) => None,
            _ => bootargs,
        };
        self.dom0_cmdline = cmdline(dom0_bootargs, CmdlineSource::Dom0Bootargs)
            .or(cmdline(module_bootargs, CmdlineSource::KernelModule))
            .or(cmdline(bootargs_for_dom0, CmdlineSource::ChosenBootargs));
    }
}

fn is_domain(props: &NodeProps<'_>) -> bool {
    props.compatible.is_some_and(|c| strings(&c).any(|s| s == "xen,domain"))
}

/// Reads a DomU node as Xen 4.17 does (`construct_domU`, `kernel_probe`),
/// refusing what Xen would not boot with a reason.
fn parse_domu<'a>(node: &FdtNode<'a>, path: &str) -> Result<DomU<'a>, &'static str> {
    // Xen: dt_property_read_u64, which wants at least two cells.
    let memory_kib = match node.property("memory") {
        None => return Err("no memory property"),
        Some(p) if p.value().len() == 8 => u64::from_be_bytes(p.value().try_into().expect("8 bytes")),
        Some(_) => return Err("memory must be a 64-bit number of KiB (<hi lo>), as Xen reads it"),
    };
    let memory = memory_kib.checked_mul(1024).ok_or("memory too large")?;
    if memory == 0 {
        return Err("memory is zero");
    }
    if !memory.is_multiple_of(4096) {
        return Err("memory is not a whole number of 4 KiB pages");
    }
    let cpus = match node.property("cpus") {
        None => return Err("no cpus property"),
        Some(p) => u32_of(&p).ok_or("cpus must be one 32-bit cell")?,
    };
    if cpus == 0 {
        return Err("cpus is zero");
    }
    if cpus as usize > MAX_CPUS {
        return Err("more cpus than the hypervisor supports");
    }
    // Xen: an empty value reads as "enabled".
    let enhanced = match node.property("xen,enhanced") {
        None => Enhanced::Disabled,
        Some(p) if p.value().is_empty() => Enhanced::Enabled,
        Some(p) => match str_of(&p) {
            Some("enabled") => Enhanced::Enabled,
            Some("no-xenstore") => Enhanced::NoXenstore,
            Some("disabled") => Enhanced::Disabled,
            _ => return Err("xen,enhanced must be \"enabled\", \"no-xenstore\" or \"disabled\""),
        },
    };
    let vpl011 = node.property("vpl011").is_some();
    // Module reg is in the domain node's cells (Xen's defaults 2 and 1).
    let cells = |name: &str, default: u32| match node.property(name) {
        None => Ok(default),
        Some(p) => u32_of(&p).filter(|n| (1..=2).contains(n)).ok_or("#address-cells and #size-cells must be 1 or 2"),
    };
    let bus = Bus::root(cells("#address-cells", 2)?, cells("#size-cells", 1)?);
    let (mut kernel, mut ramdisk): (Option<(PhysRange, Option<&'a str>)>, Option<PhysRange>) = (None, None);
    for child in node.children() {
        let props = NodeProps::of(&child);
        let Some(compatible) = props.compatible else { continue };
        if props.is_disabled() {
            continue;
        }
        let compat = || strings(&compatible);
        let specific = compat().find_map(|c| match c {
            "multiboot,kernel" | "xen,linux-zimage" => Some(ModuleKind::Kernel),
            "multiboot,ramdisk" | "xen,linux-initrd" => Some(ModuleKind::Ramdisk),
            "multiboot,device-tree" => Some(ModuleKind::DeviceTree),
            _ => None,
        });
        let generic = compat().any(|c| c == "multiboot,module" || c == "xen,multiboot-module");
        // As for Dom0's: an unspecific module is the kernel, then the ramdisk.
        let kind = match (specific, generic) {
            (Some(kind), _) => kind,
            (None, true) if kernel.is_none() => ModuleKind::Kernel,
            (None, true) if ramdisk.is_none() => ModuleKind::Ramdisk,
            (None, true) => return Err("a third multiboot,module"),
            (None, false) => continue,
        };
        if kind == ModuleKind::DeviceTree {
            return Err("multiboot,device-tree (a partial device tree) is not supported yet");
        }
        let reg = props.reg.ok_or("a module without reg")?;
        let mut regs = bus.regs(reg.value());
        let range = match (regs.next(), regs.next()) {
            (Some(Ok(range)), None) if !range.is_empty() => range,
            (Some(Ok(_)), None) => return Err("a module is empty"),
            (Some(Err(problem)), _) => return Err(problem.describe()),
            _ => return Err("a module's reg must hold exactly one range"),
        };
        match kind {
            ModuleKind::Kernel if kernel.is_some() => return Err("a second kernel module"),
            ModuleKind::Kernel => kernel = Some((range, child.property("bootargs").as_ref().and_then(str_of))),
            ModuleKind::Ramdisk if ramdisk.is_some() => return Err("a second ramdisk module"),
            _ => ramdisk = Some(range),
        }
    }
    let (kernel, module_bootargs) = kernel.ok_or("no multiboot,kernel module")?;
    let bootargs = module_bootargs.or_else(|| node.property("bootargs").as_ref().and_then(str_of));
    Ok(DomU { path: path_of(path), memory, cpus, enhanced, vpl011, kernel, bootargs, ramdisk })
}

fn gic_version(props: &NodeProps<'_>) -> Option<GicVersion> {
    if !props.interrupt_controller {
        return None;
    }
    let compatible = props.compatible?;
    strings(&compatible).find_map(|c| match c {
        "arm,gic-v3" => Some(GicVersion::V3),
        "arm,gic-400" | "arm,cortex-a15-gic" | "arm,cortex-a9-gic" | "arm,cortex-a7-gic" => Some(GicVersion::V2),
        _ => None,
    })
}

/// The INTID of the first GIC `interrupts` entry (type, number, flags).
fn first_intid(value: &[u8]) -> Option<u32> {
    let mut cells = super::props::cells(value);
    let (kind, number) = (cells.next()?, cells.next()?);
    match kind {
        0 if number < 988 => Some(number + 32), // SPI
        1 if number < 16 => Some(number + 16),  // PPI
        _ => None,
    }
}

/// `/chosen/stdout-path` without its `:options`, with an alias resolved.
fn stdout_path<'a>(fdt: &Fdt<'a>) -> Option<&'a str> {
    let chosen = fdt.root().child("chosen")?;
    let prop = chosen.property("stdout-path").or_else(|| chosen.property("linux,stdout-path"))?;
    let value = str_of(&prop)?;
    let name = value.split(':').next()?;
    if name.starts_with('/') {
        return Some(name);
    }
    let aliases = fdt.root().child("aliases")?;
    let alias = aliases.property(name)?;
    str_of(&alias).filter(|p| p.starts_with('/'))
}

/// Whether a path from the tree (`/pl011@9000000`) is the one a property
/// names; a name without a unit address matches any unit address.
fn resolves_to(wanted: &str, actual: &str) -> bool {
    let wanted = wanted.trim_end_matches('/');
    let mut w = wanted.split('/');
    let mut a = actual.split('/');
    loop {
        match (w.next(), a.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if x == y || (!x.contains('@') && y.split('@').next() == Some(x)) => {}
            _ => return false,
        }
    }
}

/// The bus of `/chosen`'s children. Like Xen, a missing `#address-cells` or
/// `#size-cells` is inherited from the root rather than taking the
/// specification's defaults: QEMU's `guest-loader` writes module `reg` in
/// the root's cells without setting them on `/chosen`.
fn chosen_child_bus(chosen: &NodeProps<'_>, root_address_cells: u32, root_size_cells: u32) -> Bus {
    let cells = |prop: Option<FdtProperty<'_>>, inherited| {
        prop.as_ref().and_then(u32_of).filter(|&n| n <= 2).unwrap_or(inherited)
    };
    Bus::root(cells(chosen.address_cells, root_address_cells), cells(chosen.size_cells, root_size_cells))
}
