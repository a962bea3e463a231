//! The module graph of the server crate has one-way arrows.
//!
//! Reads every file under `src/` (no compiler needed), collects the `crate::` / `super::` /
//! `self::` paths each module uses (in `use` trees and in code), resolves each path to the module
//! that defines it, and checks:
//! - the graph of modules (one node per file) has no cycle;
//! - the layers point one way: `infra`, `error` and `text` use no domain, and no domain's
//!   use cases (any module of a domain other than its `graphql`) use a GraphQL or HTTP module.
//!
//! `cargo test --test architecture -- --nocapture` prints the graph of the top-level modules too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The domain folders: their use cases must not know the GraphQL layer.
const DOMAINS: &[&str] = &[
    "users",
    "balance",
    "catalog",
    "coupon",
    "ordering",
    "ranking",
    "outbox",
    "verification",
];

/// Modules below every domain: they use no domain at all.
const FOUNDATIONS: &[&str] = &["infra", "error", "text", "config", "auth"];

/// The API layer: known only to `graphql`, `http`, `app` and the domains' own `graphql` modules.
const API_LAYER: &[&str] = &["graphql", "http", "app", "state", "observability"];

type Module = Vec<String>;

#[derive(Debug, PartialEq, Clone)]
enum Token {
    Ident(String),
    PathSep,
    Open,
    Close,
    Comma,
    Semi,
    Star,
    Other,
}

/// Rust source as the few tokens a path needs; comments, strings and chars are dropped.
fn tokenize(source: &str) -> Vec<Token> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
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
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && raw_string_at(&chars, i) {
            i = skip_raw_string(&chars, i);
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
        } else if c == '\'' {
            // a char literal ('x', '\n', '\u{..}') or a lifetime ('a)
            if next == Some('\\') {
                i += 2;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if chars.get(i + 2) == Some(&'\'') {
                i += 3;
            } else {
                i += 1;
            }
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_whitespace() {
            i += 1;
        } else if c == ':' && next == Some(':') {
            tokens.push(Token::PathSep);
            i += 2;
        } else {
            tokens.push(match c {
                '{' => Token::Open,
                '}' => Token::Close,
                ',' => Token::Comma,
                ';' => Token::Semi,
                '*' => Token::Star,
                _ => Token::Other,
            });
            i += 1;
        }
    }
    tokens
}

fn raw_string_at(chars: &[char], i: usize) -> bool {
    let mut j = i + 1;
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    chars.get(j) == Some(&'"')
        && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_'))
}

fn skip_raw_string(chars: &[char], i: usize) -> usize {
    let mut j = i + 1;
    let mut hashes = 0;
    while chars[j] == '#' {
        hashes += 1;
        j += 1;
    }
    j += 1;
    while j < chars.len() {
        if chars[j] == '"' && (0..hashes).all(|k| chars.get(j + 1 + k) == Some(&'#')) {
            return j + 1 + hashes;
        }
        j += 1;
    }
    j
}

/// Every path a module's tokens name, made absolute (starting below `crate`).
fn used_paths(tokens: &[Token], module: &Module) -> Vec<Module> {
    let mut paths = Vec::new();
    // inline modules (`mod tests { .. }`) with the brace depth at which they close
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let here = || {
            let mut m = module.clone();
            m.extend(inline.iter().map(|(name, _)| name.clone()));
            m
        };
        match &tokens[i] {
            Token::Open => depth += 1,
            Token::Close => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Token::Ident(word) if word == "mod" => {
                if let (Some(Token::Ident(name)), Some(Token::Open)) =
                    (tokens.get(i + 1), tokens.get(i + 2))
                {
                    inline.push((name.clone(), depth + 1));
                }
            }
            Token::Ident(word) if word == "use" => {
                let current = here();
                let mut found = Vec::new();
                i = use_tree(tokens, i + 1, Vec::new(), &mut found);
                paths.extend(found.into_iter().filter_map(|p| absolute(&p, &current)));
                continue;
            }
            Token::Ident(word)
                if (word == "crate" || word == "super" || word == "self")
                    && tokens.get(i + 1) == Some(&Token::PathSep)
                    && (i == 0 || tokens[i - 1] != Token::PathSep) =>
            {
                let mut path = vec![word.clone()];
                let mut j = i + 1;
                while tokens.get(j) == Some(&Token::PathSep) {
                    match tokens.get(j + 1) {
                        Some(Token::Ident(segment)) => path.push(segment.clone()),
                        _ => break,
                    }
                    j += 2;
                }
                if let Some(p) = absolute(&path, &here()) {
                    paths.push(p);
                }
                i = j;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    paths
}

/// Parses a `use` tree from `i`; pushes each full path; returns the index after it.
fn use_tree(
    tokens: &[Token],
    mut i: usize,
    mut prefix: Vec<String>,
    out: &mut Vec<Vec<String>>,
) -> usize {
    loop {
        match tokens.get(i) {
            Some(Token::Ident(segment)) if segment == "as" => {
                i += 2;
            }
            Some(Token::Ident(segment)) => {
                prefix.push(segment.clone());
                i += 1;
            }
            Some(Token::PathSep) => i += 1,
            Some(Token::Open) => {
                i += 1;
                loop {
                    i = use_tree(tokens, i, prefix.clone(), out);
                    if tokens.get(i) == Some(&Token::Comma) {
                        i += 1;
                    }
                    match tokens.get(i) {
                        Some(Token::Close) => return i + 1,
                        None => return i,
                        _ => {}
                    }
                }
            }
            Some(Token::Star) => {
                i += 1;
            }
            Some(Token::Semi) => {
                out.push(prefix);
                return i + 1;
            }
            _ => {
                out.push(prefix);
                return i;
            }
        }
    }
}

/// `crate::a::b` is `[a, b]`; `super::x` and `self::x` are resolved from `current`; other
/// paths (external crates, std) are `None`.
fn absolute(path: &[String], current: &Module) -> Option<Module> {
    let (first, rest) = path.split_first()?;
    let mut base = match first.as_str() {
        "crate" => Vec::new(),
        "self" => current.clone(),
        "super" => {
            let mut m = current.clone();
            m.pop()?;
            m
        }
        _ => return None,
    };
    let mut rest = rest.iter().peekable();
    while rest.peek().is_some_and(|s| *s == "super") {
        base.pop()?;
        rest.next();
    }
    base.extend(rest.cloned());
    Some(base)
}

fn module_of(src: &Path, file: &Path) -> Module {
    let relative = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// One node per file of the library (`main.rs` is the binary: it only uses the library).
fn module_graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.retain(|f| f != &src.join("main.rs"));
    let modules: BTreeMap<Module, PathBuf> = files
        .into_iter()
        .map(|f| (module_of(&src, &f), f))
        .collect();
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let source = std::fs::read_to_string(file).unwrap();
        let mut targets = BTreeSet::new();
        for path in used_paths(&tokenize(&source), module) {
            // the longest prefix that is a file of ours
            let target = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains_key(p))
                .unwrap();
            if &target != module && !target.is_empty() {
                targets.insert(target);
            }
        }
        graph.insert(module.clone(), targets);
    }
    graph
}

/// Strongly connected components with more than one node (Tarjan).
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
        for w in s.graph.get(v).into_iter().flatten() {
            let Some((w, _)) = s.graph.get_key_value(w) else {
                continue;
            };
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
            loop {
                let w = s.stack.pop().unwrap();
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
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v) {
            visit(&mut state, v);
        }
    }
    state.found
}

fn name(module: &Module) -> String {
    if module.is_empty() {
        "crate".into()
    } else {
        module.join("::")
    }
}

fn top_level(graph: &BTreeMap<Module, BTreeSet<Module>>) -> BTreeMap<Module, BTreeSet<Module>> {
    let mut top: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (from, targets) in graph {
        let Some(first) = from.first() else { continue };
        let entry = top.entry(vec![first.clone()]).or_default();
        for to in targets {
            if to.first() != Some(first) {
                entry.insert(vec![to[0].clone()]);
            }
        }
    }
    top
}

#[test]
fn the_module_graph_has_no_cycle() {
    let graph = module_graph();
    assert!(
        graph.len() > 50,
        "the walk found only {} modules",
        graph.len()
    );
    let top = top_level(&graph);
    print_graph(
        "top-level modules (a domain's graphql module counted with it)",
        &top,
    );
    for component in cycles(&top) {
        let names: Vec<String> = component.iter().map(name).collect();
        println!("  (top level only: {})", names.join(", "));
    }
    assert_acyclic("modules", &graph);
}

/// The one place the API kernel (`graphql`) names domains: the user errors whose `alternatives`
/// field lists a domain's objects (OutOfStockError's products, CouponExhaustedError's coupon
/// events). The schema makes these types mutually recursive with the payloads of the domains'
/// mutations (`userErrors: [UserError!]!`), so the edge stays; every other arrow of the kernel
/// points down.
const ALTERNATIVES: &[&str] = &["graphql", "errors"];

#[test]
fn folders_use_each_other_one_way_but_for_the_user_errors_alternatives() {
    let mut graph = module_graph();
    if let Some(targets) = graph.get_mut(
        &ALTERNATIVES
            .iter()
            .map(|s| s.to_string())
            .collect::<Module>(),
    ) {
        targets.retain(|to| !DOMAINS.contains(&to[0].as_str()));
    } else {
        panic!("no module {}", ALTERNATIVES.join("::"));
    }
    let top = top_level(&graph);
    assert!(top.len() > 15, "the walk found only {} folders", top.len());
    assert_acyclic("folders (a domain with its graphql module)", &top);
    // the kernel then uses no domain at all, and the schema's assembly sits above them
    let kernel = &top[&vec!["graphql".to_owned()]];
    let domains: Vec<&Module> = kernel
        .iter()
        .filter(|to| DOMAINS.contains(&to[0].as_str()))
        .collect();
    assert!(domains.is_empty(), "graphql uses {domains:?}");
}

fn print_graph(title: &str, graph: &BTreeMap<Module, BTreeSet<Module>>) {
    println!("{title} and what they use:");
    for (from, to) in graph {
        let to: Vec<String> = to.iter().map(name).collect();
        println!("  {} -> {}", name(from), to.join(", "));
    }
}

fn assert_acyclic(what: &str, graph: &BTreeMap<Module, BTreeSet<Module>>) {
    let report: Vec<String> = cycles(graph)
        .iter()
        .map(|c| c.iter().map(name).collect::<Vec<_>>().join(" <-> "))
        .collect();
    assert!(
        report.is_empty(),
        "{what} in a cycle:\n{}",
        report.join("\n")
    );
}

/// The use cases of the domains (every module but their `graphql` ones) and what they use.
fn use_case_graph(
    graph: &BTreeMap<Module, BTreeSet<Module>>,
) -> BTreeMap<Module, BTreeSet<Module>> {
    let is_use_case = |m: &Module| {
        m.first()
            .is_some_and(|d| DOMAINS.contains(&d.as_str()) || FOUNDATIONS.contains(&d.as_str()))
            && !m.iter().any(|segment| segment == "graphql")
    };
    graph
        .iter()
        .filter(|(from, _)| is_use_case(from))
        .map(|(from, to)| {
            (
                from.clone(),
                to.iter().filter(|t| is_use_case(t)).cloned().collect(),
            )
        })
        .collect()
}

#[test]
fn domains_use_each_other_one_way() {
    let graph = module_graph();
    let domains = top_level(&use_case_graph(&graph));
    print_graph("domains (their use cases only)", &domains);
    assert_acyclic("domains", &domains);
}

#[test]
fn layers_point_one_way() {
    let graph = module_graph();
    let mut wrong = Vec::new();
    for (from, targets) in &graph {
        let Some(first) = from.first().map(String::as_str) else {
            continue;
        };
        for to in targets {
            let target = to[0].as_str();
            let foundation_uses_domain = FOUNDATIONS.contains(&first) && DOMAINS.contains(&target);
            let use_case_uses_api = DOMAINS.contains(&first)
                && from.get(1).map(String::as_str) != Some("graphql")
                && (API_LAYER.contains(&target)
                    || to.get(1).map(String::as_str) == Some("graphql"));
            if foundation_uses_domain || use_case_uses_api {
                wrong.push(format!("{} -> {}", name(from), name(to)));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "arrows against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_tokenizer_sees_paths_in_use_trees_and_code() {
    let source = r#"
        use crate::a::{b::{C, D as E}, f};
        use super::g::*;
        // use crate::commented;
        fn x<'a>(s: &'a str) -> char { let _ = "crate::in_string"; crate::h::i(); '{' }
        mod tests { use super::*; use super::super::j; }
    "#;
    let module = vec!["m".to_owned(), "n".to_owned()];
    let paths: Vec<String> = used_paths(&tokenize(source), &module)
        .iter()
        .map(name)
        .collect();
    assert_eq!(
        paths,
        ["a::b::C", "a::b::D", "a::f", "m::g", "h::i", "m::n", "m::j"],
    );
}
