//! Restrictions on the rows a search may return, applied before the vector search.

use crate::store::predicate::sql_string;
use lancet_schemas::columns as col;

/// Restrictions applied before the vector search (Lance prefilter), so that a filtered
/// query still returns `k` rows when `k` rows match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Keep rows of these languages (any of them); empty keeps all.
    pub languages: Vec<String>,
    /// Keep rows whose path starts with this prefix.
    pub path_prefix: Option<String>,
    /// Keep rows whose path matches this glob: `*` matches any run of characters
    /// (including `/`), `?` one character.
    pub path_glob: Option<String>,
    /// Keep rows of this repository.
    pub repo: Option<String>,
    /// Keep rows matching this Lance SQL predicate (trusted text: build it from values
    /// you quoted, as the SQL layer does).
    pub predicate: Option<String>,
}

impl Filter {
    /// Whether the filter keeps every row.
    pub fn is_empty(&self) -> bool {
        self.to_sql().is_none()
    }

    /// The filter as a Lance SQL predicate, every value quoted, or `None` when it keeps
    /// every row.
    pub fn to_sql(&self) -> Option<String> {
        let mut clauses = Vec::new();
        if !self.languages.is_empty() {
            let list = self
                .languages
                .iter()
                .map(|l| sql_string(&l.to_ascii_lowercase()))
                .collect::<Vec<_>>()
                .join(", ");
            clauses.push(format!("{} IN ({list})", col::LANGUAGE));
        }
        if let Some(prefix) = self.path_prefix.as_deref().filter(|p| !p.is_empty()) {
            let pattern = format!("{}%", like_escape(prefix));
            clauses.push(like(col::PATH, &pattern));
        }
        if let Some(glob) = self.path_glob.as_deref().filter(|g| !g.is_empty()) {
            clauses.push(like(col::PATH, &glob_to_like(glob)));
        }
        if let Some(repo) = &self.repo {
            clauses.push(format!("{} = {}", col::REPO, sql_string(repo)));
        }
        if let Some(predicate) = self.predicate.as_deref().filter(|p| !p.trim().is_empty()) {
            clauses.push(format!("({predicate})"));
        }
        (!clauses.is_empty()).then(|| clauses.join(" AND "))
    }
}

const LIKE_ESCAPE: char = '\\';

fn like(column: &str, pattern: &str) -> String {
    format!(
        "{column} LIKE {} ESCAPE {}",
        sql_string(pattern),
        sql_string(&LIKE_ESCAPE.to_string())
    )
}

/// Escapes LIKE's wildcards so that `value` matches itself only.
fn like_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '%' | '_' | LIKE_ESCAPE) {
            out.push(LIKE_ESCAPE);
        }
        out.push(c);
    }
    out
}

fn glob_to_like(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len());
    let mut previous_star = false;
    for c in glob.chars() {
        match c {
            '*' if previous_star => continue,
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | LIKE_ESCAPE => {
                out.push(LIKE_ESCAPE);
                out.push(c);
            }
            _ => out.push(c),
        }
        previous_star = c == '*';
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_filter_keeps_everything() {
        assert_eq!(Filter::default().to_sql(), None);
        assert!(Filter::default().is_empty());
    }

    #[test]
    fn values_are_quoted_and_wildcards_escaped() {
        let f = Filter {
            languages: vec!["Rust".into(), "py'thon".into()],
            path_prefix: Some("src/my_mod%".into()),
            path_glob: Some("**/*_test.?s".into()),
            repo: Some("x' OR '1'='1".into()),
            predicate: None,
        };
        assert_eq!(
            f.to_sql().unwrap(),
            "language IN ('rust', 'py''thon') AND path LIKE 'src/my\\_mod\\%%' ESCAPE '\\' \
             AND path LIKE '%/%\\_test._s' ESCAPE '\\' AND repo = 'x'' OR ''1''=''1'"
        );
    }
}
