//! Test support: build device-tree blobs from a small description, and edit
//! them the way QEMU and U-Boot do (leaving FDT_NOP tokens behind).

use std::string::{String, ToString};
use std::vec::Vec;

/// A node to build.
#[derive(Clone, Debug, Default)]
pub struct N {
    pub name: String,
    pub props: Vec<(String, Vec<u8>)>,
    pub children: Vec<N>,
}

pub fn node(name: &str) -> N {
    N { name: name.to_string(), ..N::default() }
}

impl N {
    /// Sets a property, replacing one of the same name.
    pub fn raw(mut self, name: &str, value: &[u8]) -> Self {
        match self.props.iter_mut().find(|(n, _)| n == name) {
            Some(prop) => prop.1 = value.to_vec(),
            None => self.props.push((name.to_string(), value.to_vec())),
        }
        self
    }
    pub fn cells(self, name: &str, cells: &[u32]) -> Self {
        let bytes: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.raw(name, &bytes)
    }
    pub fn str(self, name: &str, value: &str) -> Self {
        let mut bytes = value.as_bytes().to_vec();
        bytes.push(0);
        self.raw(name, &bytes)
    }
    pub fn strs(self, name: &str, values: &[&str]) -> Self {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.bytes().chain([0])).collect();
        self.raw(name, &bytes)
    }
    pub fn flag(self, name: &str) -> Self {
        self.raw(name, &[])
    }
    /// `reg` with two address and two size cells per entry.
    pub fn reg64(self, entries: &[(u64, u64)]) -> Self {
        let cells: Vec<u32> =
            entries.iter().flat_map(|&(a, s)| [(a >> 32) as u32, a as u32, (s >> 32) as u32, s as u32]).collect();
        self.cells("reg", &cells)
    }
    pub fn child(mut self, child: N) -> Self {
        self.children.push(child);
        self
    }
    pub fn without_child(mut self, name: &str) -> Self {
        self.children.retain(|c| c.name != name);
        self
    }
    pub fn edit_child(mut self, name: &str, f: impl FnOnce(N) -> N) -> Self {
        let i = self.children.iter().position(|c| c.name == name).expect("child exists");
        let child = self.children.remove(i);
        self.children.insert(i, f(child));
        self
    }
}

fn write_node(w: &mut vm_fdt::FdtWriter, n: &N) {
    let handle = w.begin_node(&n.name).unwrap();
    for (name, value) in &n.props {
        w.property(name, value).unwrap();
    }
    for child in &n.children {
        write_node(w, child);
    }
    w.end_node(handle).unwrap();
}

/// The blob for a tree, with `/memreserve/` entries.
pub fn blob(root: &N, memreserve: &[(u64, u64)]) -> Vec<u8> {
    let entries: Vec<_> = memreserve.iter().map(|&(a, s)| vm_fdt::FdtReserveEntry::new(a, s).unwrap()).collect();
    let mut w = vm_fdt::FdtWriter::new_with_mem_reserv(&entries).unwrap();
    write_node(&mut w, root);
    w.finish().unwrap()
}

/// A tree shaped like QEMU's `virt` board with GICv3, a PL011 console and
/// the given RAM banks.
pub fn virt(ram: &[(u64, u64)]) -> N {
    let mut root = node("")
        .cells("#address-cells", &[2])
        .cells("#size-cells", &[2])
        .str("compatible", "linux,dummy-virt")
        .str("model", "linux,dummy-virt")
        .cells("interrupt-parent", &[0x8001])
        .child(node("chosen").str("stdout-path", "/pl011@9000000").str("bootargs", ""))
        .child(
            node("pl011@9000000")
                .strs("compatible", &["arm,pl011", "arm,primecell"])
                .reg64(&[(0x900_0000, 0x1000)])
                .cells("interrupts", &[0, 1, 4]),
        )
        .child(
            node("intc@8000000")
                .str("compatible", "arm,gic-v3")
                .cells("phandle", &[0x8001])
                .flag("interrupt-controller")
                .cells("#interrupt-cells", &[3])
                .cells("#redistributor-regions", &[1])
                .cells("#address-cells", &[2])
                .cells("#size-cells", &[2])
                .flag("ranges")
                .reg64(&[(0x800_0000, 0x1_0000), (0x80a_0000, 0xf6_0000)])
                .cells("interrupts", &[1, 9, 4])
                .child(node("its@8080000").str("compatible", "arm,gic-v3-its").reg64(&[(0x808_0000, 0x2_0000)])),
        )
        .child(
            node("cpus")
                .cells("#address-cells", &[1])
                .cells("#size-cells", &[0])
                .child(
                    node("cpu@0")
                        .str("device_type", "cpu")
                        .str("compatible", "arm,cortex-a57")
                        .cells("reg", &[0])
                        .str("enable-method", "psci"),
                )
                .child(node("cpu@1").str("device_type", "cpu").cells("reg", &[1]).str("enable-method", "psci")),
        );
    for &(start, size) in ram {
        root = root.child(node(&format!("memory@{start:x}")).str("device_type", "memory").reg64(&[(start, size)]));
    }
    root
}

/// The same board with QEMU's GICv2 (`gic-version=2`, virtualisation on):
/// GICD, GICC, GICH, GICV in `reg`, the maintenance PPI with a CPU mask, a
/// GICv2m MSI frame as a child.
pub fn virt_gicv2(ram: &[(u64, u64)]) -> N {
    virt(ram).edit_child("intc@8000000", |_| {
        node("intc@8000000")
            .str("compatible", "arm,cortex-a15-gic")
            .cells("phandle", &[0x8001])
            .flag("interrupt-controller")
            .cells("#interrupt-cells", &[3])
            .cells("#address-cells", &[2])
            .cells("#size-cells", &[2])
            .flag("ranges")
            .reg64(&[(0x800_0000, 0x1_0000), (0x801_0000, 0x1_0000), (0x803_0000, 0x1_0000), (0x804_0000, 0x1_0000)])
            .cells("interrupts", &[1, 9, 0xf04])
            .child(
                node("v2m@8020000")
                    .str("compatible", "arm,gic-v2m-frame")
                    .flag("msi-controller")
                    .reg64(&[(0x802_0000, 0x1000)]),
            )
    })
}

const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Replaces a node and everything in it with FDT_NOP tokens, as libfdt's
/// `fdt_nop_node` (used by QEMU on `/memory`) does.
pub fn nop_node(blob: &mut [u8], path: &str) {
    let structure = be32(blob, 8) as usize;
    let mut at = structure;
    let mut stack: Vec<String> = Vec::new();
    let mut target: Option<(usize, usize)> = None; // (start offset, depth)
    loop {
        let token = be32(blob, at);
        let start = at;
        at += 4;
        match token {
            FDT_BEGIN_NODE => {
                let end = blob[at..].iter().position(|&b| b == 0).unwrap();
                let name = String::from_utf8(blob[at..at + end].to_vec()).unwrap();
                at = (at + end + 1).next_multiple_of(4);
                stack.push(name);
                let here = format!("/{}", stack[1..].join("/"));
                if here == path && target.is_none() {
                    target = Some((start, stack.len()));
                }
            }
            FDT_END_NODE => {
                if let Some((from, depth)) = target
                    && depth == stack.len()
                {
                    for off in (from..at).step_by(4) {
                        blob[off..off + 4].copy_from_slice(&FDT_NOP.to_be_bytes());
                    }
                    return;
                }
                stack.pop();
            }
            FDT_PROP => {
                let len = be32(blob, at) as usize;
                at = (at + 8 + len).next_multiple_of(4);
            }
            FDT_NOP => {}
            _ => panic!("node {path} not found"),
        }
    }
}

/// Puts `count` FDT_NOP tokens in front of every node and property but the
/// root (whose FDT_BEGIN_NODE opens the structure block), the densest
/// pattern a tree edited in place can show.
pub fn sprinkle_nops(blob: &[u8], count: usize) -> Vec<u8> {
    let structure = be32(blob, 8) as usize;
    let struct_size = be32(blob, 36) as usize;
    let mut out = blob[..structure].to_vec();
    let mut at = structure;
    let end = structure + struct_size;
    while at < end {
        let token = be32(blob, at);
        let len = match token {
            FDT_BEGIN_NODE => 4 + (blob[at + 4..].iter().position(|&b| b == 0).unwrap() + 1).next_multiple_of(4),
            FDT_PROP => 12 + (be32(blob, at + 4) as usize).next_multiple_of(4),
            _ => 4,
        };
        if (token == FDT_BEGIN_NODE && at != structure) || token == FDT_PROP {
            for _ in 0..count {
                out.extend_from_slice(&FDT_NOP.to_be_bytes());
            }
        }
        out.extend_from_slice(&blob[at..at + len]);
        at += len;
    }
    let added = out.len() - (structure + struct_size);
    let strings = be32(blob, 12) as usize;
    let strings_size = be32(blob, 32) as usize;
    let new_strings = out.len();
    out.extend_from_slice(&blob[strings..strings + strings_size]);
    // Header: totalsize, off_dt_strings, size_dt_struct.
    let total = out.len() as u32;
    out[4..8].copy_from_slice(&total.to_be_bytes());
    out[12..16].copy_from_slice(&(new_strings as u32).to_be_bytes());
    out[36..40].copy_from_slice(&((struct_size + added) as u32).to_be_bytes());
    out
}
