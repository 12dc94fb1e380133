//! The module graph of the hypervisor (`src/`) and of the harness
//! (`qemu/src/`) has no cycle: layers point one way. No QEMU here, only
//! the source.
//!
//! A module is a file (`a/b.rs` or `a/b/mod.rs` is `a::b`; inline `mod`
//! blocks belong to their file). An edge is a path a module names:
//! `crate::a::b::Item` or `super::b::Item`, in a `use` tree or inline,
//! resolved to the deepest module it reaches. Edges between a module and
//! its own ancestors are left out both ways: a folder's `mod.rs` declares
//! and re-exports its children, and children share what it defines.
//! Written by hand because it needs only paths, not a Rust parser (`syn`
//! would double the test build for this).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type Module = Vec<String>;

/// Every module of the crate rooted at `root` (its `lib.rs`'s folder), with
/// the file that holds it.
fn modules(root: &Path) -> BTreeMap<Module, PathBuf> {
    fn walk(dir: &Path, prefix: &Module, out: &mut BTreeMap<Module, PathBuf>) {
        let mut entries: Vec<_> =
            std::fs::read_dir(dir).expect("read source folder").flatten().map(|e| e.path()).collect();
        entries.sort();
        for path in entries {
            let name = path.file_stem().and_then(|s| s.to_str()).expect("utf-8 file name").to_string();
            if path.is_dir() {
                if name == "bin" && prefix.is_empty() {
                    continue; // binaries are crates of their own, on top
                }
                let mut module = prefix.clone();
                module.push(name);
                walk(&path, &module, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                if prefix.is_empty() && name == "main" {
                    continue; // the binary's own root, on top of the library
                }
                let mut module = prefix.clone();
                if !(name == "mod" || (prefix.is_empty() && name == "lib")) {
                    module.push(name);
                }
                out.insert(module, path);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, &Vec::new(), &mut out);
    out
}

/// The source without comments, string and character literals (their text
/// could look like paths), lifetimes kept apart from character literals.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1).copied()) {
            ('/', Some('/')) => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            ('/', Some('*')) => {
                let mut depth = 0;
                while i < chars.len() {
                    if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                        depth += 1;
                        i += 2;
                    } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
                out.push(' ');
            }
            ('r', Some('#' | '"')) if i == 0 || !chars[i - 1].is_alphanumeric() && chars[i - 1] != '_' => {
                let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
                if chars.get(i + 1 + hashes) != Some(&'"') {
                    out.push(chars[i]);
                    i += 1;
                    continue;
                }
                i += 2 + hashes;
                while i < chars.len()
                    && !(chars[i] == '"' && chars[i + 1..].iter().take(hashes).filter(|&&c| c == '#').count() == hashes)
                {
                    i += 1;
                }
                i += 1 + hashes;
                out.push_str("\"\"");
            }
            ('"', _) => {
                i += 1;
                while i < chars.len() && chars[i] != '"' {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            ('\'', _) => {
                // A character literal ('x', '\n', '\u{..}'), or a lifetime.
                let close = if chars.get(i + 1) == Some(&'\\') {
                    chars[i + 2..].iter().position(|&c| c == '\'').map(|p| i + 2 + p)
                } else {
                    (chars.get(i + 2) == Some(&'\'')).then_some(i + 2)
                };
                match close {
                    Some(end) => {
                        out.push_str("' '");
                        i = end + 1;
                    }
                    None => {
                        out.push('\'');
                        i += 1;
                    }
                }
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The paths a file names, each with the inline module it was named in
/// (relative to the file's module): `use` trees expanded, inline paths
/// taken as they stand. Only paths that start at `crate` or `super`.
fn named_paths(code: &str) -> Vec<(Module, Vec<String>)> {
    let tokens = tokenize(code);
    let mut out = Vec::new();
    // Inline modules open at a brace depth; `super` inside them starts there.
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let here: Module = inline.iter().map(|(name, _)| name.clone()).collect();
        match tokens[i].as_str() {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|&(_, d)| d == depth) {
                    inline.pop();
                }
            }
            "mod" if tokens.get(i + 2).is_some_and(|t| t == "{") => {
                inline.push((tokens[i + 1].clone(), depth));
                depth += 1;
                i += 3;
                continue;
            }
            "use" => {
                let end = tokens[i..].iter().position(|t| t == ";").map_or(tokens.len(), |p| i + p);
                let mut paths = Vec::new();
                expand_use(&tokens[i + 1..end], Vec::new(), &mut paths);
                out.extend(paths.into_iter().map(|p| (here.clone(), p)));
                i = end + 1;
                continue;
            }
            "crate" | "super" if i == 0 || tokens[i - 1] != "::" => {
                let mut path = vec![tokens[i].clone()];
                let mut j = i + 1;
                while tokens.get(j).is_some_and(|t| t == "::") && tokens.get(j + 1).is_some_and(|t| is_ident(t)) {
                    path.push(tokens[j + 1].clone());
                    j += 2;
                }
                if path.len() > 1 {
                    out.push((here, path));
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    out
}

fn is_ident(token: &str) -> bool {
    token.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// Identifiers, `::` and single punctuation characters.
fn tokenize(code: &str) -> Vec<String> {
    let chars: Vec<char> = code.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(chars[start..i].iter().collect());
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            tokens.push("::".into());
            i += 2;
        } else {
            if !c.is_whitespace() {
                tokens.push(c.to_string());
            }
            i += 1;
        }
    }
    tokens
}

/// Expands a `use` tree (`a::b::{c, d::e as f, self}`) into its paths.
fn expand_use(tokens: &[String], prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].as_str() {
            "::" => {}
            "{" => {
                // Split the group at its top-level commas.
                let mut depth = 0;
                let mut start = i + 1;
                for j in i..tokens.len() {
                    match tokens[j].as_str() {
                        "{" => depth += 1,
                        "}" => {
                            depth -= 1;
                            if depth == 0 {
                                expand_use(&tokens[start..j], path.clone(), out);
                                return;
                            }
                        }
                        "," if depth == 1 => {
                            expand_use(&tokens[start..j], path.clone(), out);
                            start = j + 1;
                        }
                        _ => {}
                    }
                }
                return;
            }
            "as" | "*" => break,
            "self" => {}
            t if is_ident(t) => path.push(t.to_string()),
            _ => break,
        }
        i += 1;
    }
    if path.first().is_some_and(|p| p == "crate" || p == "super") && path.len() > 1 {
        out.push(path);
    }
}

/// The module a path from `from` reaches: `crate`/`super` resolved, then
/// the deepest known module along it.
fn resolve(known: &BTreeMap<Module, PathBuf>, from: &Module, path: &[String]) -> Option<Module> {
    let mut base: Module = Vec::new();
    let mut rest = path;
    if path[0] == "crate" {
        rest = &path[1..];
    } else {
        base = from.clone();
        while rest.first().is_some_and(|s| s == "super") {
            base.pop()?;
            rest = &rest[1..];
        }
    }
    let mut reached = base.clone();
    let mut candidate = base;
    for segment in rest {
        candidate.push(segment.clone());
        if known.contains_key(&candidate) {
            reached = candidate.clone();
        } else {
            break;
        }
    }
    Some(reached)
}

/// The edges of the crate rooted at `root` (ancestor edges left out).
fn edges(root: &Path) -> BTreeMap<Module, BTreeSet<Module>> {
    let known = modules(root);
    let mut graph: BTreeMap<Module, BTreeSet<Module>> = known.keys().map(|m| (m.clone(), BTreeSet::new())).collect();
    for (module, file) in &known {
        let source = std::fs::read_to_string(file).expect("read source");
        for (inline, path) in named_paths(&code_only(&source)) {
            let mut from = module.clone();
            from.extend(inline);
            let Some(to) = resolve(&known, &from, &path) else { continue };
            let related = to.starts_with(module) || module.starts_with(&to);
            if !related {
                graph.get_mut(module).expect("known module").insert(to);
            }
        }
    }
    graph
}

/// The strongly connected components with more than one module (Tarjan).
fn cycles(graph: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<Module>> {
    struct State<'a> {
        graph: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        on_stack: BTreeSet<&'a Module>,
        found: Vec<Vec<Module>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in &s.graph[v] {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(w.clone());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found
}

fn describe(graph: &BTreeMap<Module, BTreeSet<Module>>, component: &[Module]) -> String {
    let name = |m: &Module| if m.is_empty() { "crate".to_string() } else { m.join("::") };
    let mut lines = Vec::new();
    for from in component {
        for to in graph[from].iter().filter(|t| component.contains(t)) {
            lines.push(format!("    {} -> {}", name(from), name(to)));
        }
    }
    lines.join("\n")
}

fn assert_acyclic(root: &Path) {
    let graph = edges(root);
    let found = cycles(&graph);
    let report: Vec<String> = found.iter().map(|c| describe(&graph, c)).collect();
    assert!(found.is_empty(), "module cycles in {}:\n{}", root.display(), report.join("\n  and\n"));
}

#[test]
fn the_hypervisor_has_no_module_cycle() {
    assert_acyclic(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
}

/// The hypervisor's top-level modules, top to bottom (the README's
/// picture). A module may use those in its own layer or below, never above.
const LAYERS: &[&[&str]] = &[
    // The entry points: the boot CPU from reset, every exception after.
    &["boot", "router"],
    &["shutdown", "crash", "fuzz"],
    &["dom0", "domu"],
    &["console"],
    &["arch"],
    &["domain"],
    &["xen"],
    &["gic", "mm", "dt", "cmdline", "config", "fatal", "boot_phases"],
];

#[test]
fn the_hypervisor_layers_point_down() {
    let layer_of = |m: &Module| m.first().and_then(|top| LAYERS.iter().position(|l| l.contains(&top.as_str())));
    let graph = edges(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let mut upward = Vec::new();
    for (from, tos) in &graph {
        let Some(from_layer) = layer_of(from) else {
            assert!(from.is_empty(), "{} is in no layer: add it to LAYERS", from.join("::"));
            continue;
        };
        for to in tos {
            let to_layer = layer_of(to).unwrap_or(usize::MAX);
            if to_layer < from_layer {
                upward.push(format!("    {} -> {}", from.join("::"), to.join("::")));
            }
        }
    }
    assert!(upward.is_empty(), "calls up the layers:\n{}", upward.join("\n"));
}

#[test]
fn the_harness_has_no_module_cycle() {
    assert_acyclic(&Path::new(env!("CARGO_MANIFEST_DIR")).join("qemu/src"));
}

/// The checker itself: paths in `use` trees, inline paths, `super` from
/// inline modules, comments and strings, and a cycle it must find.
#[test]
fn the_checker_reads_paths_and_finds_cycles() {
    let code = code_only(
        "use crate::a::{b::{self, C}, d as e};\n// crate::x::y\nlet s = \"crate::z::w\"; let c = '\"'; fn f<'a>() { super::g::h(); }\nmod tests { use super::k; }",
    );
    let paths: Vec<String> =
        named_paths(&code).into_iter().map(|(inline, p)| format!("{}|{}", inline.join("::"), p.join("::"))).collect();
    assert_eq!(paths, ["|crate::a::b", "|crate::a::b::C", "|crate::a::d", "|super::g::h", "tests|super::k"]);

    let dir = std::env::temp_dir().join(format!("layers-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("b")).unwrap();
    std::fs::write(dir.join("lib.rs"), "mod a; mod b; mod c;").unwrap();
    std::fs::write(dir.join("a.rs"), "use crate::b::inner::Thing;").unwrap();
    std::fs::write(dir.join("b/mod.rs"), "pub mod inner; use self::inner::Thing;").unwrap();
    std::fs::write(dir.join("b/inner.rs"), "pub struct Thing; fn f() { crate::c::g(); super::super::a::h(); }")
        .unwrap();
    std::fs::write(dir.join("c.rs"), "mod tests { use super::super::a; }").unwrap();
    let graph = edges(&dir);
    let found = cycles(&graph);
    let _ = std::fs::remove_dir_all(&dir);
    let m = |s: &str| s.split("::").map(String::from).collect::<Module>();
    assert_eq!(found, vec![vec![m("a"), m("b::inner"), m("c")]], "{graph:?}");
}
