//! The filter columns of every node (language, repository, path), dictionary-coded, so
//! that a [`Filter`] becomes a set of nodes without asking Lance.

use crate::search::Filter;
use roaring::RoaringBitmap;
use std::collections::HashMap;

/// A column of strings stored as codes into a dictionary of distinct values, with the
/// nodes of each value, so that a filter costs one test per distinct value.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Dictionary {
    values: Vec<String>,
    codes: Vec<u32>,
    #[serde(skip)]
    lookup: HashMap<String, u32>,
    #[serde(skip)]
    postings: Vec<RoaringBitmap>,
}

impl Dictionary {
    pub(crate) fn push(&mut self, value: &str) {
        let code = match self.lookup.get(value) {
            Some(&code) => code,
            None => {
                let code = self.values.len() as u32;
                self.values.push(value.to_string());
                self.lookup.insert(value.to_string(), code);
                self.postings.push(RoaringBitmap::new());
                code
            }
        };
        self.postings[code as usize].insert(self.codes.len() as u32);
        self.codes.push(code);
    }

    /// Rebuilds what is not saved; false when a code is out of range.
    fn finish_load(&mut self) -> bool {
        self.lookup = self
            .values
            .iter()
            .enumerate()
            .map(|(code, value)| (value.clone(), code as u32))
            .collect();
        self.postings = vec![RoaringBitmap::new(); self.values.len()];
        for (node, &code) in self.codes.iter().enumerate() {
            match self.postings.get_mut(code as usize) {
                Some(nodes) => nodes.insert(node as u32),
                None => return false,
            };
        }
        true
    }

    pub(crate) fn len(&self) -> usize {
        self.codes.len()
    }

    /// Nodes whose value satisfies `accept`: the test runs once per distinct value.
    fn nodes_where(&self, accept: impl Fn(&str) -> bool) -> RoaringBitmap {
        let mut nodes = RoaringBitmap::new();
        for (value, postings) in self.values.iter().zip(&self.postings) {
            if accept(value) {
                nodes |= postings;
            }
        }
        nodes
    }
}

/// Language, repository and path of every node.
#[derive(Debug, Default, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Attributes {
    pub(crate) language: Dictionary,
    pub(crate) repo: Dictionary,
    pub(crate) path: Dictionary,
}

impl Attributes {
    pub(crate) fn push(&mut self, language: &str, repo: &str, path: &str) {
        self.language.push(language);
        self.repo.push(repo);
        self.path.push(path);
    }

    pub(crate) fn len(&self) -> usize {
        self.language.len()
    }

    /// Restores what is not saved after deserialisation; false when the columns disagree.
    pub(crate) fn finish_load(&mut self) -> bool {
        [&mut self.language, &mut self.repo, &mut self.path]
            .into_iter()
            .all(Dictionary::finish_load)
            && self.repo.len() == self.language.len()
            && self.path.len() == self.language.len()
    }

    /// The nodes `filter` keeps, or `None` when it keeps all. Ignores `filter.predicate`,
    /// which only Lance can evaluate.
    pub(crate) fn matching(&self, filter: &Filter) -> Option<RoaringBitmap> {
        let mut sets = Vec::new();
        if !filter.languages.is_empty() {
            let wanted: Vec<String> = filter
                .languages
                .iter()
                .map(|l| l.to_ascii_lowercase())
                .collect();
            sets.push(self.language.nodes_where(|l| wanted.iter().any(|w| w == l)));
        }
        if let Some(prefix) = filter.path_prefix.as_deref().filter(|p| !p.is_empty()) {
            sets.push(self.path.nodes_where(|p| p.starts_with(prefix)));
        }
        if let Some(glob) = filter.path_glob.as_deref().filter(|g| !g.is_empty()) {
            let pattern: Vec<char> = glob.chars().collect();
            sets.push(self.path.nodes_where(|p| glob_matches(&pattern, p)));
        }
        if let Some(repo) = &filter.repo {
            sets.push(self.repo.nodes_where(|r| r == repo));
        }
        sets.into_iter().reduce(|a, b| a & b)
    }
}

/// The glob of [`Filter::path_glob`]: `*` any run of characters (`/` included), `?` one
/// character, everything else itself; the whole path must match.
pub(crate) fn glob_matches(pattern: &[char], text: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    // Iterative matching with backtracking to the last `*`: linear in practice.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == '?' || (pattern[p] != '*' && pattern[p] == text[t]))
        {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(p: &str, t: &str) -> bool {
        glob_matches(&p.chars().collect::<Vec<_>>(), t)
    }

    #[test]
    // That the Lance path's SQL `LIKE` agrees is tested end to end (`tests/end_to_end/
    // hot_index.rs`, `the_hot_index_and_lance_agree_on_every_glob`).
    fn globs_match_star_and_question_mark_anywhere() {
        assert!(glob("*_test.go", "pkg/a/b_test.go"));
        assert!(!glob("*_test.go", "pkg/a/b_test.go.orig"));
        assert!(glob("src/*.r?", "src/deep/x.rs"));
        assert!(glob("**", ""));
        assert!(!glob("a?", "a"));
        assert!(glob("x' OR '1'='1", "x' OR '1'='1"));
        assert!(!glob("x' OR '1'='1", "anything"));
    }

    #[test]
    fn filters_select_nodes_by_each_attribute() {
        let mut a = Attributes::default();
        a.push("rust", "r1", "src/lib.rs");
        a.push("python", "r1", "tools/gen.py");
        a.push("rust", "r2", "src/main.rs");
        let nodes = |f: Filter| a.matching(&f).map(|s| s.iter().collect::<Vec<_>>());
        assert_eq!(nodes(Filter::default()), None);
        let rust = Filter {
            languages: vec!["Rust".into()],
            ..Filter::default()
        };
        assert_eq!(nodes(rust), Some(vec![0, 2]));
        let scoped = Filter {
            path_prefix: Some("src/".into()),
            repo: Some("r2".into()),
            ..Filter::default()
        };
        assert_eq!(nodes(scoped), Some(vec![2]));
        let injected = Filter {
            path_prefix: Some("x' OR '1'='1".into()),
            ..Filter::default()
        };
        assert_eq!(nodes(injected), Some(vec![]));
    }
}
