//! The module rules of this crate (ARCHITECTURE.md, "Inside voicemon-server"), checked
//! by reading the sources: a change that breaks one fails here, not in review.

use std::path::{Path, PathBuf};

/// (module, modules it must not import).
const RULES: &[(&str, &[&str])] = &[
    // The HTTP edge sits on top: only startup wires it in.
    ("alerting", &["api", "startup"]),
    ("auth", &["api", "startup"]),
    // The event bus is another way in, beside the HTTP edge: validation and the writer only.
    ("bus", &["api", "startup", "query", "live", "alerting", "notify"]),
    ("config", &["api", "startup"]),
    // The accept loop serves whatever router it is given and knows nothing above it.
    ("connections", &["api", "startup", "state", "query", "live", "config"]),
    ("health", &["api", "startup", "live", "alerting"]),
    ("ingest", &["api", "startup", "query", "live"]),
    // The buckets know callers and counts, not HTTP, requests or what is behind them.
    ("limits", &["api", "startup", "state", "config", "query", "ingest", "live", "alerting", "notify"]),
    ("live", &["api", "startup"]),
    ("notify", &["api", "startup", "query", "live"]),
    // Pure judgement of origins and hosts: below config, which names its type.
    ("origin", &["api", "startup", "config", "state", "query", "live"]),
    // Traces become events like the bus's: no HTTP (the api decodes nothing for it but the
    // body), no reads, none of the subsystems downstream of the store.
    ("otlp", &["api", "startup", "state", "config", "query", "live", "alerting", "notify"]),
    // The read model knows no HTTP and none of its callers.
    ("query", &["api", "startup", "state", "live", "alerting", "config"]),
    ("redis", &["api", "startup", "query"]),
    ("reprice", &["api", "startup", "live"]),
    // Leases know nothing of the duties they gate.
    ("roles", &["api", "startup", "query", "live", "alerting", "health", "notify"]),
    ("telemetry", &["api", "startup", "query"]),
];

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("the source directory is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The crate-level module a source file belongs to: `src/query/cost.rs` → `query`.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src");
    let first = relative.components().next().expect("a path").as_os_str().to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// The crate-level modules a file names with `crate::…`.
fn imports(text: &str) -> Vec<String> {
    text.match_indices("crate::")
        .map(|(at, prefix)| {
            let rest = &text[at + prefix.len()..];
            rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
        })
        .collect()
}

#[test]
fn no_module_imports_what_sits_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut broken = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        let Some((_, forbidden)) = RULES.iter().find(|(name, _)| *name == module) else {
            continue;
        };
        let text = std::fs::read_to_string(file).expect("a readable source");
        for imported in imports(&text) {
            if forbidden.contains(&imported.as_str()) {
                broken.push(format!("{} imports crate::{imported}", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "module rules broken:\n{}", broken.join("\n"));
}

#[test]
fn every_module_of_the_crate_has_a_rule_or_is_the_top() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("lib.rs");
    let top = ["api", "startup", "state", "architecture"];
    for line in lib.lines() {
        let Some(name) = line.trim().strip_prefix("pub mod ").or_else(|| line.trim().strip_prefix("mod "))
        else {
            continue;
        };
        let name = name.trim_end_matches(';');
        assert!(
            top.contains(&name) || RULES.iter().any(|(module, _)| *module == name),
            "module `{name}` has no rule in architecture.rs"
        );
    }
}
