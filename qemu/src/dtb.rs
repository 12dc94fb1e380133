//! Boot device trees for tests: QEMU's own tree, decompiled with `dtc`,
//! edited as source text, compiled back. Kept independent of the
//! hypervisor's device-tree code on purpose, so one cannot hide the other's bug.

use crate::run_dir;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A device tree as `dtc` source.
#[derive(Clone, Debug)]
pub struct Dts {
    pub text: String,
}

fn dtc(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("dtc")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run dtc (install device-tree-compiler: qemu/setup)");
    child.stdin.take().expect("stdin").write_all(input).expect("feed dtc");
    let out = child.wait_with_output().expect("dtc output");
    assert!(out.status.success(), "dtc {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

impl Dts {
    pub fn from_blob(blob: &[u8]) -> Self {
        let text = dtc(&["-q", "-I", "dtb", "-O", "dts"], blob);
        Self { text: String::from_utf8(text).expect("dtc writes text") }
    }

    pub fn to_blob(&self) -> Vec<u8> {
        dtc(&["-q", "-I", "dts", "-O", "dtb"], self.text.as_bytes())
    }

    /// Writes the compiled tree to a file of the harness's and returns its path.
    pub fn write(&self, name: &str) -> PathBuf {
        let path = run_dir().join(format!("{name}.dtb"));
        std::fs::write(&path, self.to_blob()).expect("write dtb");
        path
    }

    /// The line range `[open, close]` of the first node at depth 1 whose
    /// name starts with `prefix`.
    fn top_node(&self, prefix: &str) -> Option<(usize, usize)> {
        let lines: Vec<&str> = self.text.lines().collect();
        let open = lines.iter().position(|l| {
            l.strip_prefix('\t').is_some_and(|n| !n.starts_with('\t') && n.starts_with(prefix) && n.ends_with('{'))
        })?;
        let close = (open..lines.len()).find(|&i| lines[i] == "\t};")?;
        Some((open, close))
    }

    /// Removes every depth-1 node whose name starts with `prefix`.
    pub fn remove_nodes(mut self, prefix: &str) -> Self {
        while let Some((open, close)) = self.top_node(prefix) {
            let lines: Vec<&str> = self.text.lines().collect();
            let kept: Vec<&str> = lines[..open].iter().chain(&lines[close + 1..]).copied().collect();
            self.text = kept.join("\n") + "\n";
        }
        self
    }

    /// Adds properties (source lines) to the depth-1 node `name`, made if
    /// missing. They go first: dtc wants properties before subnodes.
    pub fn add_to_node(mut self, name: &str, body: &str) -> Self {
        let Some((open, _)) = self.top_node(name) else {
            return self.add_root_child(&format!("{name} {{\n{body}\n}};"));
        };
        let mut lines: Vec<String> = self.text.lines().map(String::from).collect();
        lines.insert(open + 1, body.to_string());
        self.text = lines.join("\n") + "\n";
        self
    }

    /// Adds a child node (source text) at the end of the depth-1 node `name`.
    pub fn add_subnode(mut self, name: &str, node: &str) -> Self {
        let (_, close) = self.top_node(name).unwrap_or_else(|| panic!("no node {name}"));
        let mut lines: Vec<String> = self.text.lines().map(String::from).collect();
        lines.insert(close, node.to_string());
        self.text = lines.join("\n") + "\n";
        self
    }

    /// Adds a `/reserved-memory` node with one `no-map` carve-out.
    pub fn with_carve_out(self, start: u64, size: u64) -> Self {
        self.add_root_child(&format!(
            "reserved-memory {{\n#address-cells = <2>;\n#size-cells = <2>;\nranges;\n\
             carveout@{start:x} {{ reg = <{:#x} {:#x} {:#x} {:#x}>; no-map; }};\n}};",
            start >> 32,
            start & 0xffff_ffff,
            size >> 32,
            size & 0xffff_ffff
        ))
    }

    /// Adds a `multiboot,kernel` module node to `/chosen` (the file itself
    /// must be placed at `addr` separately, e.g. with QEMU's loader).
    pub fn with_kernel_module(self, addr: u64, size: u64) -> Self {
        self.add_subnode(
            "chosen",
            &format!(
                "module@{addr:x} {{ compatible = \"multiboot,kernel\", \"multiboot,module\"; \
                 reg = <{:#x} {:#x} {:#x} {:#x}>; }};",
                addr >> 32,
                addr & 0xffff_ffff,
                size >> 32,
                size & 0xffff_ffff
            ),
        )
    }

    /// Adds a node (source text) at the root.
    pub fn add_root_child(mut self, node: &str) -> Self {
        let end = self.text.rfind("};").expect("root node closes");
        self.text.insert_str(end, &format!("{node}\n"));
        self
    }
}
