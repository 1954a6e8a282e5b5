//! The layout map in `src/lib.rs` is a rule, and this test holds the code to it.
//!
//! The map lists the modules on numbered floors, top to bottom. This test reads that
//! list, then every `crate::`, `super::` and `self::` path in `src/` (in `use` trees
//! and anywhere else in code; comments and strings are not code), resolves each to the
//! module it names, and fails, naming the file, the line and both modules, when:
//! - a module uses one on its own floor or a floor above it;
//! - submodules of one module use each other in a circle (two or more);
//! - the map and the crate's modules disagree.
//!
//! A module and its own submodules (ancestor and descendant) may use each other: they
//! are one concern.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt::Write as _,
    path::{Path, PathBuf},
};

/// A module's path below the crate root (`[]` is the root).
type ModPath = Vec<String>;

/// One path in the code that names another module.
#[derive(Debug, Clone)]
struct Use {
    from: ModPath,
    to: ModPath,
    file: String,
    line: usize,
    text: String,
}

/// The crate as this test sees it: its modules and the uses between them.
#[derive(Debug, Default)]
struct Tree {
    modules: BTreeSet<ModPath>,
    uses: Vec<Use>,
    /// The top-level modules `lib.rs` declares.
    declared: BTreeSet<String>,
}

// === reading the map ===

/// The floors of the `# Layout` list in `lib.rs`: item `N.` is floor N, and its
/// modules are the `[`name`]` links before the item's first `: `.
fn floors(lib: &str) -> Result<Vec<Vec<String>>, String> {
    let mut floors: Vec<Vec<String>> = Vec::new();
    let mut in_layout = false;
    for line in lib.lines() {
        let Some(doc) = line.strip_prefix("//!") else {
            if in_layout {
                break;
            }
            continue;
        };
        let doc = doc.trim();
        if doc.starts_with('#') {
            in_layout = doc == "# Layout";
            continue;
        }
        if !in_layout {
            continue;
        }
        let Some((number, rest)) = doc.split_once(". ") else {
            continue;
        };
        let Ok(number) = number.parse::<usize>() else {
            continue;
        };
        if number != floors.len() + 1 {
            return Err(format!(
                "lib.rs layout: floor {number} follows floor {}",
                floors.len()
            ));
        }
        let head = rest.split(": ").next().unwrap_or_default();
        let modules: Vec<String> = head
            .split("[`")
            .skip(1)
            .filter_map(|s| s.split_once("`]").map(|(name, _)| name.to_owned()))
            .collect();
        if modules.is_empty() {
            return Err(format!("lib.rs layout: floor {number} names no module"));
        }
        floors.push(modules);
    }
    if floors.is_empty() {
        return Err("lib.rs has no `# Layout` list of floors".to_owned());
    }
    Ok(floors)
}

// === reading the code ===

/// `src` with comments, string and character literals blanked out (line breaks kept,
/// so line numbers hold).
fn strip(src: &str) -> String {
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |out: &mut String, c: char| out.push(if c == '\n' { '\n' } else { ' ' });
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
        } else if let Some(hashes) = raw_string_start(&chars, i) {
            // r"…", r#"…"#, br"…": ends at a quote followed by as many hashes.
            let open = chars[i..].iter().position(|&c| c == '"').unwrap_or(0) + i;
            for &c in &chars[i..=open] {
                blank(&mut out, c);
            }
            i = open + 1;
            while i < chars.len() {
                if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += hashes + 1;
                    break;
                }
                blank(&mut out, chars[i]);
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
                if i < chars.len() {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && is_char_literal(&chars, i) {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    blank(&mut out, chars[i]);
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// The number of `#`s when a raw string starts at `i`.
fn raw_string_start(chars: &[char], i: usize) -> Option<usize> {
    if i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_') {
        return None;
    }
    let mut j = i;
    if chars.get(j) == Some(&'b') {
        j += 1;
    }
    if chars.get(j) != Some(&'r') {
        return None;
    }
    j += 1;
    let mut hashes = 0;
    while chars.get(j) == Some(&'#') {
        hashes += 1;
        j += 1;
    }
    (chars.get(j) == Some(&'"')).then_some(hashes)
}

/// Whether the `'` at `i` opens a character literal (not a lifetime or a label).
fn is_char_literal(chars: &[char], i: usize) -> bool {
    matches!(
        (chars.get(i + 1), chars.get(i + 2)),
        (Some('\\'), _) | (Some(_), Some('\''))
    )
}

/// A token of stripped code: an identifier or one punctuation character (`::` is one).
#[derive(Debug, Clone, PartialEq)]
struct Token {
    text: String,
    line: usize,
}

fn tokens(code: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut line = 1;
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token {
                text: chars[start..i].iter().collect(),
                line,
            });
        } else if c == ':' && chars.get(i + 1) == Some(&':') {
            out.push(Token {
                text: "::".to_owned(),
                line,
            });
            i += 2;
        } else {
            out.push(Token {
                text: c.to_string(),
                line,
            });
            i += 1;
        }
    }
    out
}

fn is_ident(t: &str) -> bool {
    t.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// The paths of a `use` tree starting at `tokens[i]`, each with the line of its last
/// segment; returns them and the index after the tree.
fn use_tree(
    tokens: &[Token],
    mut i: usize,
    prefix: &[String],
) -> (Vec<(Vec<String>, usize)>, usize) {
    let mut paths = Vec::new();
    let mut path = prefix.to_vec();
    let mut line = tokens.get(i).map_or(0, |t| t.line);
    while let Some(t) = tokens.get(i) {
        match t.text.as_str() {
            "::" => i += 1,
            "{" => {
                i += 1;
                loop {
                    let (inner, next) = use_tree(tokens, i, &path);
                    paths.extend(inner);
                    i = next;
                    match tokens.get(i).map(|t| t.text.as_str()) {
                        Some(",") => {
                            i += 1;
                            if tokens.get(i).is_some_and(|t| t.text == "}") {
                                i += 1;
                                break;
                            }
                        }
                        Some("}") => {
                            i += 1;
                            break;
                        }
                        _ => break,
                    }
                }
                return (paths, i);
            }
            "as" => {
                i += 2;
            }
            "*" => i += 1,
            "," | "}" | ";" => break,
            text if is_ident(text) => {
                // `self` inside a tree names the prefix itself.
                if text != "self" || path.is_empty() {
                    path.push(text.to_owned());
                }
                line = t.line;
                i += 1;
            }
            _ => break,
        }
    }
    if path.len() > prefix.len() || !path.is_empty() {
        paths.push((path, line));
    }
    (paths, i)
}

/// The module a path names from `current`: the longest prefix that is a module. `None`
/// for paths that do not start at `crate`, `super` or `self`, or that name the root.
fn resolve(current: &[String], path: &[String], modules: &BTreeSet<ModPath>) -> Option<ModPath> {
    let mut base: Vec<String> = match path.first()?.as_str() {
        "crate" => Vec::new(),
        "super" | "self" => current.to_vec(),
        _ => return None,
    };
    let mut rest = path;
    if rest[0] == "crate" {
        rest = &rest[1..];
    } else {
        while let Some(first) = rest.first() {
            match first.as_str() {
                "super" => {
                    base.pop()?;
                }
                "self" => {}
                _ => break,
            }
            rest = &rest[1..];
        }
    }
    base.extend(rest.iter().cloned());
    (1..=base.len())
        .rev()
        .map(|n| base[..n].to_vec())
        .find(|candidate| modules.contains(candidate))
}

/// The module a file holds, from its place under `src/`.
fn module_of(relative: &Path) -> Option<ModPath> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop()?;
    let stem = file.strip_suffix(".rs")?;
    match stem {
        "lib" if parts.is_empty() => {}
        "main" if parts.is_empty() => return None,
        "mod" => {}
        _ => parts.push(stem.to_owned()),
    }
    Some(parts)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Inline `mod name { … }` blocks of a file's tokens: each with the token range it
/// spans, nested ones inside their parents.
fn inline_modules(tokens: &[Token], base: &[String]) -> Vec<(ModPath, usize, usize)> {
    let mut found = Vec::new();
    let mut open: Vec<(ModPath, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        match tokens[i].text.as_str() {
            "mod"
                if tokens.get(i + 1).is_some_and(|t| is_ident(&t.text))
                    && tokens.get(i + 2).is_some_and(|t| t.text == "{") =>
            {
                let mut path = open
                    .last()
                    .map_or_else(|| base.to_vec(), |(p, _)| p.clone());
                path.push(tokens[i + 1].text.clone());
                depth += 1;
                open.push((path, depth));
                found.push((open.last().unwrap().0.clone(), i + 2, tokens.len()));
                i += 3;
                continue;
            }
            "{" => depth += 1,
            "}" => {
                if open.last().is_some_and(|(_, d)| *d == depth) {
                    let (path, _) = open.pop().unwrap();
                    if let Some(entry) = found.iter_mut().rev().find(|(p, _, _)| *p == path) {
                        entry.2 = i;
                    }
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        i += 1;
    }
    found
}

/// Reads the crate under `src`.
fn scan(src: &Path) -> Tree {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut tree = Tree::default();
    let mut parsed = Vec::new();
    for path in &files {
        let relative = path.strip_prefix(src).unwrap();
        let Some(module) = module_of(relative) else {
            continue;
        };
        let text = std::fs::read_to_string(path).unwrap();
        let tokens = tokens(&strip(&text));
        let inline = inline_modules(&tokens, &module);
        tree.modules.insert(module.clone());
        for (m, _, _) in &inline {
            tree.modules.insert(m.clone());
        }
        if module.is_empty() {
            for w in tokens.windows(3) {
                if w[0].text == "mod" && is_ident(&w[1].text) && w[2].text == ";" {
                    tree.declared.insert(w[1].text.clone());
                }
            }
        }
        parsed.push((
            format!("src/{}", relative.display()),
            module,
            tokens,
            inline,
        ));
    }
    for (file, module, tokens, inline) in parsed {
        // The innermost module around token `i`.
        let module_at = |i: usize| -> ModPath {
            inline
                .iter()
                .filter(|(_, start, end)| *start <= i && i <= *end)
                .max_by_key(|(p, _, _)| p.len())
                .map_or_else(|| module.clone(), |(p, _, _)| p.clone())
        };
        let mut record = |from: ModPath, path: Vec<String>, line: usize| {
            if let Some(to) = resolve(&from, &path, &tree.modules)
                && !to.is_empty()
            {
                tree.uses.push(Use {
                    from,
                    to,
                    file: file.clone(),
                    line,
                    text: path.join("::"),
                });
            }
        };
        let mut i = 0;
        while i < tokens.len() {
            let t = &tokens[i].text;
            if t == "use"
                && tokens
                    .get(i + 1)
                    .is_some_and(|n| n.text != "::" && n.text != "(")
            {
                let from = module_at(i);
                let (paths, next) = use_tree(&tokens, i + 1, &[]);
                for (path, line) in paths {
                    record(from.clone(), path, line);
                }
                i = next.max(i + 1);
                continue;
            }
            let starts_path = matches!(t.as_str(), "crate" | "super" | "self")
                && tokens.get(i + 1).is_some_and(|n| n.text == "::")
                && !(i > 0 && tokens[i - 1].text == "$")
                && !(i > 0 && tokens[i - 1].text == "::");
            if starts_path {
                let from = module_at(i);
                let mut path = vec![t.clone()];
                let mut line = tokens[i].line;
                let mut j = i + 1;
                while tokens.get(j).is_some_and(|n| n.text == "::")
                    && tokens.get(j + 1).is_some_and(|n| is_ident(&n.text))
                {
                    path.push(tokens[j + 1].text.clone());
                    line = tokens[j + 1].line;
                    j += 2;
                }
                record(from, path, line);
                i = j;
                continue;
            }
            i += 1;
        }
    }
    tree
}

// === checking ===

fn name(m: &[String]) -> String {
    m.join("::")
}

/// Every way the tree breaks the floors, one line each.
fn violations(tree: &Tree, floors: &[Vec<String>]) -> Vec<String> {
    let mut out = Vec::new();
    let mut floor_of = BTreeMap::new();
    for (i, floor) in floors.iter().enumerate() {
        for m in floor {
            if floor_of.insert(m.clone(), i + 1).is_some() {
                out.push(format!("src/lib.rs: the layout names `{m}` twice"));
            }
        }
    }
    for m in &tree.declared {
        if !floor_of.contains_key(m) {
            out.push(format!(
                "src/lib.rs: module `{m}` is on no floor of the layout"
            ));
        }
    }
    for m in floor_of.keys() {
        if !tree.declared.contains(m) {
            out.push(format!(
                "src/lib.rs: the layout names `{m}`, which is not a module"
            ));
        }
    }
    // Uses between modules that are not one another's ancestor, by the two children of
    // their closest common ancestor that they sit in.
    let mut between: BTreeMap<(ModPath, String, String), Vec<&Use>> = BTreeMap::new();
    for u in &tree.uses {
        let common = u.from.iter().zip(&u.to).take_while(|(a, b)| a == b).count();
        if common == u.from.len() || common == u.to.len() {
            continue;
        }
        let parent = u.from[..common].to_vec();
        let (a, b) = (u.from[common].clone(), u.to[common].clone());
        if parent.is_empty()
            && let (Some(&fa), Some(&fb)) = (floor_of.get(&a), floor_of.get(&b))
            && fb <= fa
        {
            let place = if fb == fa {
                "on its own floor"
            } else {
                "above it"
            };
            out.push(format!(
                "{}:{}: `{}` uses `{}` (`{}`), which the layout puts {place} (floor {fb}; `{a}` is on floor {fa})",
                u.file,
                u.line,
                name(&u.from),
                name(&u.to),
                u.text,
            ));
        }
        between.entry((parent, a, b)).or_default().push(u);
    }
    // Circles among the children of each module (the crate root included).
    let mut by_parent: BTreeMap<ModPath, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (parent, a, b) in between.keys() {
        by_parent
            .entry(parent.clone())
            .or_default()
            .entry(a.clone())
            .or_default()
            .insert(b.clone());
    }
    for (parent, graph) in &by_parent {
        // Among the top-level modules, a longer circle always holds a use the floors
        // refuse (reported above); two that use each other are named as well.
        let found = if parent.is_empty() {
            pairs(graph)
        } else {
            circles(graph)
        };
        for circle in found {
            let mut text = String::new();
            let full = |m: &String| {
                let mut p = parent.clone();
                p.push(m.clone());
                name(&p)
            };
            let _ = write!(
                text,
                "modules use each other in a circle: {}",
                circle.iter().map(full).collect::<Vec<_>>().join(" -> ")
            );
            for pair in circle.windows(2) {
                if let Some(u) = between
                    .get(&(parent.clone(), pair[0].clone(), pair[1].clone()))
                    .and_then(|uses| uses.first())
                {
                    let _ = write!(
                        text,
                        "\n    {}:{}: `{}` uses `{}` (`{}`)",
                        u.file,
                        u.line,
                        name(&u.from),
                        name(&u.to),
                        u.text
                    );
                }
            }
            out.push(text);
        }
    }
    // A line that names one path twice says nothing new.
    let mut seen = BTreeSet::new();
    out.retain(|line| seen.insert(line.clone()));
    out
}

/// Every two nodes that point at each other, as circles `[a, b, a]`.
fn pairs(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (a, bs) in graph {
        for b in bs {
            if a < b && graph.get(b).is_some_and(|back| back.contains(a)) {
                out.push(vec![a.clone(), b.clone(), a.clone()]);
            }
        }
    }
    out
}

/// One circle through each strongly connected group of two or more (first and last
/// element equal).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let nodes: BTreeSet<&String> = graph
        .iter()
        .flat_map(|(a, bs)| std::iter::once(a).chain(bs))
        .collect();
    let reaches = |from: &String, to: &String| -> Option<Vec<String>> {
        // Breadth-first, for the shortest way back.
        let mut seen = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([from.clone()]);
        seen.insert(from.clone(), None::<String>);
        while let Some(n) = queue.pop_front() {
            for next in graph.get(&n).into_iter().flatten() {
                if next == to {
                    let mut path = vec![to.clone(), n.clone()];
                    let mut at = n.clone();
                    while let Some(Some(prev)) = seen.get(&at) {
                        path.push(prev.clone());
                        at = prev.clone();
                    }
                    path.reverse();
                    return Some(path);
                }
                if !seen.contains_key(next) {
                    seen.insert(next.clone(), Some(n.clone()));
                    queue.push_back(next.clone());
                }
            }
        }
        None
    };
    let mut reported: BTreeSet<String> = BTreeSet::new();
    let mut out = Vec::new();
    for node in nodes {
        if reported.contains(node) {
            continue;
        }
        if let Some(circle) = reaches(node, node) {
            reported.extend(circle.iter().cloned());
            out.push(circle);
        }
    }
    out
}

fn check(root: &Path) -> Vec<String> {
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    match floors(&lib) {
        Ok(floors) => violations(&scan(&root.join("src")), &floors),
        Err(e) => vec![e],
    }
}

// === test helpers ===

/// A fresh directory under the system's temporary one.
fn scratch(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "fpgw-architecture-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(root: &Path, files: &[(&str, &str)]) {
    for (path, text) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A crate with `SMALL_LIB`'s map, `top`, `side` and `middle` empty, and `files`
/// (the module `bottom`, at least).
fn small_crate(root: &Path, files: &[(&str, &str)]) {
    write(
        root,
        &[
            ("src/lib.rs", SMALL_LIB),
            ("src/top.rs", ""),
            ("src/side.rs", ""),
            ("src/middle.rs", ""),
        ],
    );
    write(root, files);
}

const SMALL_LIB: &str = "//! # Layout\n//!\n//! 1. [`top`]: uses the others.\n//! 2. [`middle`], [`side`]: one floor.\n//! 3. [`bottom`]: uses nothing.\n\npub mod bottom;\npub mod middle;\npub mod side;\npub mod top;\n";

// === tests ===

#[test]
fn src_keeps_the_layout_map() {
    let found = check(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert!(
        found.is_empty(),
        "{} violations:\n{}",
        found.len(),
        found.join("\n")
    );
}

#[test]
fn the_map_has_every_module_of_lib_rs_on_a_floor() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let lib = std::fs::read_to_string(root.join("src/lib.rs")).unwrap();
    let floors = floors(&lib).unwrap();
    let tree = scan(&root.join("src"));
    let mapped: BTreeSet<String> = floors.into_iter().flatten().collect();
    assert_eq!(mapped, tree.declared);
    // The scan found the code's paths at all (a parser that reads nothing passes).
    assert!(tree.uses.len() > 300, "only {} uses found", tree.uses.len());
    assert!(
        tree.modules
            .contains(&vec!["proto".to_owned(), "v1".to_owned()])
    );
}

#[test]
fn an_upward_use_planted_in_a_copy_of_src_is_named_with_file_line_and_both_modules() {
    let root = scratch("planted");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &root.join("src"),
    );
    let rpc = root.join("src/rpc.rs");
    let mut text = std::fs::read_to_string(&rpc).unwrap();
    let line = text.lines().count() + 3;
    text.push_str("\n#[allow(unused_imports)]\nuse crate::cache::Cache;\n");
    std::fs::write(&rpc, text).unwrap();
    let found = check(&root);
    assert_eq!(found.len(), 2, "{found:#?}");
    let expected = format!("src/rpc.rs:{line}: `rpc` uses `cache` (`crate::cache::Cache`)");
    assert!(found[0].starts_with(&expected), "{}", found[0]);
    // `cache` uses `rpc`, so the two now use each other.
    assert!(
        found[1].starts_with("modules use each other in a circle: cache -> rpc -> cache"),
        "{}",
        found[1]
    );
    assert!(
        found[1].contains(&format!("src/rpc.rs:{line}")),
        "{}",
        found[1]
    );
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn same_floor_and_upward_uses_fail_in_every_spelling() {
    let root = scratch("spellings");
    write(
        &root,
        &[
            ("src/lib.rs", SMALL_LIB),
            ("src/top.rs", "use crate::{middle::{self, M}, bottom::*};\n"),
            ("src/side.rs", "pub struct S;\n"),
            (
                "src/middle.rs",
                "pub struct M;\nfn f() -> crate::side::S { crate::side::S }\n",
            ),
            (
                "src/bottom/mod.rs",
                "mod inner {\n    mod deeper {\n        use super::super::super::top;\n    }\n}\npub fn g() {\n    let _ = self::super::middle::M;\n}\n",
            ),
        ],
    );
    let found = check(&root);
    let text = found.join("\n");
    // Three uses against the floors, and `top` and `bottom` now use each other.
    assert_eq!(found.len(), 4, "{text}");
    assert!(
        text.contains("modules use each other in a circle: bottom -> top -> bottom"),
        "{text}"
    );
    assert!(text.contains("src/middle.rs:2: `middle` uses `side` (`crate::side::S`), which the layout puts on its own floor"), "{text}");
    assert!(text.contains("src/bottom/mod.rs:3: `bottom::inner::deeper` uses `top` (`super::super::super::top`), which the layout puts above it"), "{text}");
    assert!(
        text.contains("src/bottom/mod.rs:7: `bottom` uses `middle` (`self::super::middle::M`)"),
        "{text}"
    );
    // The use tree's `self` names `middle` itself: downward, allowed.
    assert!(!found.iter().any(|f| f.starts_with("src/top.rs")), "{text}");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn submodules_that_use_each_other_are_a_circle() {
    let root = scratch("circle");
    small_crate(
        &root,
        &[
            (
                "src/bottom/mod.rs",
                "pub mod list;\npub mod typed;\npub mod page;\n",
            ),
            (
                "src/bottom/list.rs",
                "use super::typed::Answer;\npub struct Page;\n",
            ),
            (
                "src/bottom/typed.rs",
                "pub struct Answer;\nfn f() -> crate::bottom::list::Page { todo!() }\n",
            ),
            ("src/bottom/page.rs", "use super::typed::Answer;\n"),
        ],
    );
    let found = check(&root);
    assert_eq!(found.len(), 1, "{found:#?}");
    let text = &found[0];
    assert!(
        text.contains("bottom::list -> bottom::typed -> bottom::list"),
        "{text}"
    );
    assert!(
        text.contains("src/bottom/list.rs:1: `bottom::list` uses `bottom::typed`"),
        "{text}"
    );
    assert!(
        text.contains("src/bottom/typed.rs:2: `bottom::typed` uses `bottom::list`"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn comments_strings_and_macro_paths_are_not_uses() {
    let root = scratch("quiet");
    small_crate(
        &root,
        &[(
            "src/bottom.rs",
            "//! See [`crate::top`].\n/* crate::top::X /* nested */ crate::top */\nconst A: &str = \"crate::top::X\";\nconst B: &str = r#\"use crate::top;\"#;\nconst C: char = '\"';\nfn f<'a>(x: &'a str) -> &'a str { x }\nmacro_rules! m { () => { $crate::top::X } }\n",
        )],
    );
    let found = check(&root);
    assert!(found.is_empty(), "{found:#?}");
    let _ = std::fs::remove_dir_all(root);
}

#[test]
fn a_map_that_misses_or_invents_a_module_fails() {
    let root = scratch("map");
    write(
        &root,
        &[
            (
                "src/lib.rs",
                "//! # Layout\n//!\n//! 1. [`top`]: a.\n//! 2. [`ghost`]: b.\n\npub mod top;\npub mod bottom;\n",
            ),
            ("src/top.rs", ""),
            ("src/bottom.rs", ""),
        ],
    );
    let found = check(&root).join("\n");
    assert!(found.contains("module `bottom` is on no floor"), "{found}");
    assert!(
        found.contains("the layout names `ghost`, which is not a module"),
        "{found}"
    );
    let _ = std::fs::remove_dir_all(root);
}
