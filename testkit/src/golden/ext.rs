//! The second set of kneo-serv 1.2.0 recordings (`kneo-serv-1.2.0-ext/NNN_name.json`), read by
//! the categories its `INDEX.md` assigns them to.
//!
//! The index is the contract: its "Counts" table says how many exchanges each category has and
//! each category's table lists them. [`category`] refuses (panics) when the index and the files
//! disagree — a missing file, a count that does not add up — because a replay over fewer files
//! than the index lists proves less than it claims.
//!
//! The directory is `shared/golden/kneo-serv-1.2.0-ext` above the workspace root, or
//! `$KNEO_GOLDEN_EXT_DIR`. Its `specs/` folder holds every spec the recordings used
//! ([`specs_dir`]).

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use super::{Golden, parse_file};

/// Overrides the directory the ext recordings are read from.
pub const GOLDEN_EXT_DIR_ENV: &str = "KNEO_GOLDEN_EXT_DIR";

/// The directory holding the ext recordings and their `INDEX.md`.
pub fn dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(GOLDEN_EXT_DIR_ENV) {
        return PathBuf::from(dir);
    }
    super::shared_golden("kneo-serv-1.2.0-ext")
}

/// The specs the recordings ran (`specs/hello.yaml`, `specs/ext/...`, `specs/inline/...`).
pub fn specs_dir() -> PathBuf {
    dir().join("specs")
}

/// One row of a category table of `INDEX.md`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexEntry {
    /// The three-digit number, e.g. `011`.
    pub number: String,
    /// The file name, e.g. `011_runs_replay_completed.json`.
    pub file: String,
    pub category: String,
    /// The index's "must reproduce" column: what the exchange demonstrates.
    pub must_reproduce: String,
}

/// What `INDEX.md` says: the declared count per category and the listed exchanges.
#[derive(Debug, Clone, Default)]
pub struct Index {
    pub counts: BTreeMap<String, usize>,
    pub entries: Vec<IndexEntry>,
}

impl Index {
    /// The entries of one category, in index order.
    pub fn category(&self, category: &str) -> Vec<&IndexEntry> {
        self.entries
            .iter()
            .filter(|entry| entry.category == category)
            .collect()
    }
}

/// Reads and parses `INDEX.md`.
pub fn index() -> Index {
    let path = dir().join("INDEX.md");
    let text = fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "cannot read the ext golden index {path:?}: {error}; \
             set {GOLDEN_EXT_DIR_ENV} to the directory holding INDEX.md and the NNN_name.json files"
        )
    });
    parse_index(&text)
}

/// Parses the "Counts" table and the `### <category>: ...` tables of an index.
pub fn parse_index(text: &str) -> Index {
    let mut index = Index::default();
    let mut section = Section::Other;
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            section = if heading.trim() == "Counts" {
                Section::Counts
            } else {
                Section::Other
            };
            continue;
        }
        if let Some(heading) = line.strip_prefix("### ") {
            section = match heading.split_once(':') {
                Some((category, _)) => Section::Category(category.trim().to_string()),
                None => Section::Other,
            };
            continue;
        }
        let cells = table_cells(line);
        match &section {
            Section::Counts => {
                if let [category, _, count] = cells.as_slice()
                    && let Ok(count) = count.parse::<usize>()
                    && category != "total"
                {
                    index.counts.insert(category.clone(), count);
                }
            }
            Section::Category(category) => {
                if let [number, file, .., must_reproduce] = cells.as_slice()
                    && number.len() == 3
                    && number.chars().all(|c| c.is_ascii_digit())
                {
                    index.entries.push(IndexEntry {
                        number: number.clone(),
                        file: file.trim_matches('`').to_string(),
                        category: category.clone(),
                        must_reproduce: must_reproduce.clone(),
                    });
                }
            }
            Section::Other => {}
        }
    }
    index
}

enum Section {
    Counts,
    Category(String),
    Other,
}

/// The cells of a Markdown table row (`| a | b |` → `["a", "b"]`); empty for other lines.
/// A `\|` inside a cell is part of the cell.
fn table_cells(line: &str) -> Vec<String> {
    let line = line.trim();
    if !line.starts_with('|') || !line.ends_with('|') || line.len() < 2 {
        return Vec::new();
    }
    let inner = &line[1..line.len() - 1];
    let mut cells = Vec::new();
    let mut current = String::new();
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                current.push('|');
                chars.next();
            }
            '|' => cells.push(std::mem::take(&mut current).trim().to_string()),
            _ => current.push(c),
        }
    }
    cells.push(current.trim().to_string());
    cells
}

/// Every exchange of `category`, in index order. Panics unless the index lists as many as its
/// Counts table declares and every listed file exists and parses.
pub fn category(category: &str) -> Vec<Golden> {
    let index = index();
    let declared = index.counts.get(category).copied().unwrap_or_else(|| {
        panic!(
            "INDEX.md has no count for category {category:?}; known: {:?}",
            index.counts.keys().collect::<Vec<_>>()
        )
    });
    let entries = index.category(category);
    assert_eq!(
        entries.len(),
        declared,
        "INDEX.md declares {declared} exchanges for {category} but its table lists {}",
        entries.len()
    );
    let dir = dir();
    let missing: Vec<&str> = entries
        .iter()
        .filter(|entry| !dir.join(&entry.file).is_file())
        .map(|entry| entry.file.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "{} of the {declared} {category} recordings listed in INDEX.md are missing from {dir:?}: {missing:?}",
        missing.len()
    );
    entries
        .iter()
        .map(|entry| parse_file(&dir.join(&entry.file)))
        .collect()
}

/// The exchange numbered `number` (e.g. `"011"`).
pub fn load(number: &str) -> Golden {
    let wanted = format!("{number}_");
    let dir = dir();
    let matches: Vec<PathBuf> = super::json_files(&dir)
        .into_iter()
        .filter(|path| super::file_stem(path).starts_with(&wanted))
        .collect();
    match matches.as_slice() {
        [path] => parse_file(path),
        [] => panic!("no ext golden file named {wanted}*.json in {dir:?}"),
        several => panic!("ext golden number {number:?} is ambiguous: {several:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_declares_and_lists_the_same_exchanges_per_category() {
        let index = index();
        assert!(index.counts.contains_key("A-routes"), "{:?}", index.counts);
        for (category, count) in &index.counts {
            assert_eq!(
                index.category(category).len(),
                *count,
                "category {category}"
            );
        }
    }

    #[test]
    fn a_category_loads_every_listed_file_in_order() {
        let routes = category("A-routes");
        assert_eq!(routes[0].name, "001_openapi_json");
        assert_eq!(routes[0].request.path, "/openapi.json");
        let names: Vec<&str> = routes.iter().map(|g| g.name.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
    }

    #[test]
    fn escaped_pipes_stay_inside_their_cell() {
        let index = parse_index(
            "## Counts\n| category | what | exchanges |\n|---|---|---|\n| X | things | 1 |\n\
             ### X: things\n| # | file | request | status | shows | must reproduce |\n\
             | 001 | `001_a.json` | GET `/a` | 200 | a | shows 'flaky\\|': 2 |\n",
        );
        assert_eq!(index.counts["X"], 1);
        assert_eq!(index.entries[0].file, "001_a.json");
        assert_eq!(index.entries[0].must_reproduce, "shows 'flaky|': 2");
    }

    #[test]
    #[should_panic(expected = "no count for category")]
    fn an_unknown_category_is_refused() {
        category("Z-nothing");
    }
}
