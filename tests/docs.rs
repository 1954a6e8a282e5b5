//! The docs hold together: every relative link in `README.md` and `docs/` names a file
//! that exists, and every `#anchor` names a heading of that file (as GitHub makes
//! anchors from headings). The README stays a front door, not the whole manual.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

/// The README's length past which it is a manual again.
const README_MAX_LINES: usize = 300;

/// The links of a Markdown text, outside code blocks and code spans: `(line, target)`.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Code spans hold no links.
        let prose: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((n + 1, after[..end].trim().to_owned()));
            rest = &after[end..];
        }
    }
    out
}

/// The anchors GitHub gives a Markdown file's headings: lower case, punctuation but `-`
/// and `_` dropped, spaces as `-`, and `-1`, `-2`, … on repeats.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let slug: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        let mut candidate = slug.clone();
        let mut n = 0;
        while out.contains(&candidate) {
            n += 1;
            candidate = format!("{slug}-{n}");
        }
        out.insert(candidate);
    }
    out
}

/// Every broken relative link or anchor of the Markdown files given, one line each.
fn broken(files: &[PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let resolved = if path.is_empty() {
                file.clone()
            } else {
                file.parent().unwrap_or(Path::new(".")).join(path)
            };
            let place = format!("{}:{line}: ({target})", file.display());
            if !resolved.exists() {
                out.push(format!("{place}: no file {}", resolved.display()));
                continue;
            }
            if let Some(anchor) = anchor {
                let heads = std::fs::read_to_string(&resolved)
                    .map(|t| anchors(&t))
                    .unwrap_or_default();
                if !heads.contains(anchor) {
                    out.push(format!(
                        "{place}: no heading #{anchor} in {}",
                        resolved.display()
                    ));
                }
            }
        }
    }
    out
}

fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

#[test]
fn every_relative_link_and_anchor_of_the_docs_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = markdown_files(root);
    assert!(files.len() > 5, "{files:?}");
    let found = broken(&files);
    assert!(found.is_empty(), "broken links:\n{}", found.join("\n"));
    // The README links every file of docs/.
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let linked: BTreeSet<String> = links(&readme).into_iter().map(|(_, t)| t).collect();
    for doc in &files[1..] {
        let name = format!("docs/{}", doc.file_name().unwrap().to_string_lossy());
        assert!(linked.contains(&name), "README.md does not link {name}");
    }
}

#[test]
fn the_readme_is_a_front_door() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(
        lines <= README_MAX_LINES,
        "README.md has {lines} lines; depth belongs in docs/"
    );
}

#[test]
fn a_missing_file_or_heading_is_reported_with_its_line() {
    let dir = std::env::temp_dir().join(format!("fpgw-docs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("docs")).unwrap();
    std::fs::write(
        dir.join("docs/a.md"),
        "# A\n\n## Who may call what?\n\n## Who may call what?\n\n```\n[not a link](nowhere.md)\n```\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("README.md"),
        "# R\n\n[ok](docs/a.md#who-may-call-what) [ok too](docs/a.md#who-may-call-what-1)\n[gone](docs/b.md) `[code](nowhere.md)`\n[bad anchor](docs/a.md#who-may-call) [self](#r) [web](https://example.com/x)\n",
    )
    .unwrap();
    let found = broken(&markdown_files(&dir));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].contains("README.md:4: (docs/b.md): no file"),
        "{}",
        found[0]
    );
    assert!(
        found[1].contains("README.md:5: (docs/a.md#who-may-call): no heading #who-may-call"),
        "{}",
        found[1]
    );
    let _ = std::fs::remove_dir_all(dir);
}
