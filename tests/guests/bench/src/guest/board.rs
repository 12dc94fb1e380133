//! What the benchmark needs from its device tree: the iteration count on
//! its command line, the GIC's distributor and redistributors, the CPUs'
//! MPIDRs, how PSCI is called, and an address with nothing behind it.

use dtoolkit::ToCellInt as _;
use dtoolkit::fdt::{Fdt, FdtNode};
use dtoolkit::{Node, Property};

/// More CPUs than this are not looked at.
const MAX_CPUS: usize = 8;

pub struct Board {
    /// `iterations=N` from `/chosen/bootargs`.
    pub iterations: Option<u64>,
    /// The GIC: a GICv3's distributor and redistributors' region, or a
    /// GICv2's distributor and CPU interface.
    pub gic: Option<Gic>,
    cpu_ids: [u64; MAX_CPUS],
    cpu_count: usize,
    /// PSCI through HVC (otherwise SMC).
    pub psci_hvc: bool,
    /// A guest-physical address Dom0 has no access to: the grant-table
    /// region, `/hypervisor`'s first `reg` entry (the hypervisor's own image
    /// under both hypervisors).
    pub unmapped: Option<u64>,
    /// The first extended region (`/hypervisor`'s second `reg` entry):
    /// where Dom0 puts foreign and grant mappings.
    pub extended_region: Option<(u64, u64)>,
    /// `domu=ID` on the command line: measure the calls to that DomU
    /// (serving, `tests/guests/domu-probe` with `mode=serve`) instead.
    pub domu: Option<u16>,
}

#[derive(Clone, Copy)]
pub struct Gic {
    pub distributor: u64,
    /// A GICv3's (empty on a GICv2).
    pub redistributors: (u64, u64),
    /// A GICv2's CPU interface (the virtual one under a hypervisor).
    pub cpu_interface: Option<u64>,
}

/// The `(address, size)` pairs of a node's `reg`, in its parent's cells.
fn regs<'a>(node: FdtNode<'a>) -> impl Iterator<Item = (u64, u64)> + 'a {
    node.reg().ok().flatten().into_iter().flatten().filter_map(|r| Some((r.address().ok()?, r.size().ok()?)))
}

impl Board {
    pub fn read(dtb: u64) -> Result<Self, &'static str> {
        // SAFETY: x0 points at the tree per the boot protocol; its header's
        // size is read first and bounded.
        let size = u32::from_be(unsafe { core::ptr::read_volatile((dtb + 4) as *const u32) }) as usize;
        if size > 2 << 20 {
            return Err("larger than 2 MiB");
        }
        // SAFETY: as above.
        let blob = unsafe { core::slice::from_raw_parts(dtb as *const u8, size) };
        let fdt = Fdt::new(blob).map_err(|_| "not a valid tree")?;
        let root = fdt.root();

        let chosen = fdt.chosen();
        let bootargs = chosen.as_ref().and_then(|c| c.bootargs().ok().flatten()).unwrap_or("");
        let number = |name: &str| {
            bootargs.split_ascii_whitespace().find_map(|w| w.strip_prefix(name)?.strip_prefix('=')?.parse::<u64>().ok())
        };
        let iterations = number("iterations");
        let domu = number("domu").and_then(|id| u16::try_from(id).ok());

        let gicv2 = |s: &str| s == "arm,cortex-a15-gic" || s == "arm,gic-400";
        let gic = root
            .children()
            .find(|n| n.compatible().is_some_and(|mut c| c.any(|s| s == "arm,gic-v3" || gicv2(s))))
            .and_then(|node| {
                let v2 = node.compatible().is_some_and(|mut c| c.any(gicv2));
                let mut reg = regs(node);
                let (distributor, _) = reg.next()?;
                let (start, size) = reg.next()?;
                Some(match v2 {
                    true => Gic { distributor, redistributors: (0, 0), cpu_interface: Some(start) },
                    false => Gic { distributor, redistributors: (start, start + size), cpu_interface: None },
                })
            });

        let mut cpu_ids = [0; MAX_CPUS];
        let mut cpu_count = 0;
        if let Ok(cpus) = fdt.cpus() {
            for cpu in cpus.cpus() {
                let id = cpu.ids().ok().and_then(|mut ids| ids.next()?.to_int::<u64>().ok());
                if let (Some(id), true) = (id, cpu_count < MAX_CPUS) {
                    cpu_ids[cpu_count] = id;
                    cpu_count += 1;
                }
            }
        }

        let psci_hvc =
            root.child("psci").and_then(|n| n.property("method").map(|p| p.value() == b"hvc\0")).unwrap_or(false);
        let hypervisor = root.child("hypervisor");
        let unmapped = hypervisor.and_then(|n| regs(n).next()).map(|(start, _)| start);
        let extended_region = hypervisor.and_then(|n| regs(n).nth(1)).map(|(start, size)| (start, start + size));
        Ok(Self { iterations, gic, cpu_ids, cpu_count, psci_hvc, unmapped, extended_region, domu })
    }

    /// The MPIDRs of the CPUs, boot CPU first (as the tree lists them).
    pub fn cpus(&self) -> &[u64] {
        &self.cpu_ids[..self.cpu_count]
    }
}
