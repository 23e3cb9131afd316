//! [`DbLocation`]: where a database lives, a local folder or an object-store URI.

use std::path::{Path, PathBuf};

/// Where a database lives.
///
/// Made from any path-like value: `s3://bucket/db`, `s3+ddb://bucket/db?ddbTableName=t`,
/// `gs://bucket/db` and `az://container/db` (any `scheme://` but `file://`) name an
/// object store; anything else is a local folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DbLocation {
    /// A folder on this machine.
    Folder(PathBuf),
    /// A URI of an object store, as Lance takes it (no trailing slash).
    ObjectStore(String),
}

impl DbLocation {
    /// The location `text` names (see the type's documentation).
    pub fn parse(text: &str) -> Self {
        if let Some(path) = text.strip_prefix("file://") {
            return DbLocation::Folder(PathBuf::from(path));
        }
        match text.split_once("://") {
            Some((scheme, rest)) if is_scheme(scheme) && !rest.is_empty() => {
                DbLocation::ObjectStore(text.trim_end_matches('/').to_string())
            }
            _ => DbLocation::Folder(PathBuf::from(text)),
        }
    }

    /// The folder, for a database on this machine.
    pub fn folder(&self) -> Option<&Path> {
        match self {
            DbLocation::Folder(path) => Some(path),
            DbLocation::ObjectStore(_) => None,
        }
    }

    /// Whether the database lives on an object store.
    pub fn is_object_store(&self) -> bool {
        matches!(self, DbLocation::ObjectStore(_))
    }

    /// The location of table `name`'s own data, as Lance addresses it.
    pub fn table_uri(&self, name: &str) -> String {
        match self {
            DbLocation::Folder(path) => path.join(format!("{name}.lance")).display().to_string(),
            DbLocation::ObjectStore(uri) => {
                // A query string (`?ddbTableName=...`) stays at the end.
                match uri.split_once('?') {
                    Some((base, query)) => format!("{base}/{name}.lance?{query}"),
                    None => format!("{uri}/{name}.lance"),
                }
            }
        }
    }

    /// The default folder on this machine for what Lancet derives from an object-store
    /// database (hot indexes, writer locks): `lancet/databases/<hash of the URI>` in the
    /// user's cache folder. `None` for a local database (it keeps them beside its
    /// tables) or where no cache folder is known.
    pub fn default_local_dir(&self) -> Option<PathBuf> {
        let DbLocation::ObjectStore(uri) = self else {
            return None;
        };
        let hash = blake3::hash(uri.as_bytes()).to_hex();
        Some(
            crate::user_cache_home()?
                .join("lancet")
                .join("databases")
                .join(&hash[..16]),
        )
    }
}

/// `s3`, `s3+ddb`, `gs`, `az`, `abfss`: a letter, then letters, digits, `+`, `-`, `.`.
fn is_scheme(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        // `C://x` is a Windows drive, not a scheme.
        && text.len() > 1
}

impl<P: AsRef<Path>> From<P> for DbLocation {
    fn from(path: P) -> Self {
        let path = path.as_ref();
        match path.to_str() {
            Some(text) => DbLocation::parse(text),
            None => DbLocation::Folder(path.to_path_buf()),
        }
    }
}

impl std::fmt::Display for DbLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbLocation::Folder(path) => write!(f, "{}", path.display()),
            DbLocation::ObjectStore(uri) => f.write_str(uri),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_name_object_stores_and_everything_else_is_a_folder() {
        for uri in [
            "s3://bucket/db",
            "s3+ddb://bucket/db?ddbTableName=commits",
            "gs://bucket/a/b",
            "az://container/db",
        ] {
            assert_eq!(
                DbLocation::parse(uri),
                DbLocation::ObjectStore(uri.into()),
                "{uri}"
            );
        }
        assert_eq!(
            DbLocation::parse("s3://bucket/db/"),
            DbLocation::ObjectStore("s3://bucket/db".into())
        );
        for path in [".lancet", "/tmp/db", "C://x", "weird:name", "s3:/one-slash"] {
            assert_eq!(
                DbLocation::parse(path),
                DbLocation::Folder(path.into()),
                "{path}"
            );
        }
        assert_eq!(
            DbLocation::parse("file:///tmp/db"),
            DbLocation::Folder("/tmp/db".into())
        );
        assert_eq!(
            DbLocation::from(Path::new("s3://b/x")),
            DbLocation::ObjectStore("s3://b/x".into())
        );
    }

    #[test]
    fn table_uris_keep_the_query_string_last() {
        assert_eq!(
            DbLocation::parse("s3+ddb://b/db?ddbTableName=t").table_uri("chunks"),
            "s3+ddb://b/db/chunks.lance?ddbTableName=t"
        );
        assert_eq!(
            DbLocation::parse("/x/db").table_uri("chunks"),
            "/x/db/chunks.lance"
        );
    }

    #[test]
    fn each_object_store_gets_its_own_local_folder() {
        let a = DbLocation::parse("s3://b/one").default_local_dir();
        let b = DbLocation::parse("s3://b/two").default_local_dir();
        if a.is_some() {
            assert_ne!(a, b);
        }
        assert_eq!(DbLocation::parse("/x").default_local_dir(), None);
    }
}
